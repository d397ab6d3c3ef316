//! `#[ws_messages]`: the enum with its serde envelope, one payload type per variant in a module named after
//! the enum, and the `WsMessages`/`Variant` impls.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::attr::{Delivery, Direction};
use proc_macro2::Ident;
use syn::Visibility;

use crate::model::{MessageSet, MessageVariant, Shape};

pub(crate) fn message_set(set: &MessageSet) -> TokenStream {
    let enum_def = enum_definition(set);
    let aliases = field_type_aliases(set);
    let module = payload_module(set);
    let impls = trait_impls(set);
    quote! {
        #enum_def
        #aliases
        #module
        #[doc(hidden)]
        const _: () = {
            #impls
        };
    }
}

fn enum_definition(set: &MessageSet) -> TokenStream {
    let (krate, serde_crate) = (set.krate(), set.private_crate("serde"));
    let (ident, vis) = (set.ident(), set.vis());
    let attrs = set.attrs();
    let variants = set.variants.iter().map(|v| {
        let (name, wire, attrs) = (&v.ident, &v.wire_name, &v.attrs);
        let body = match &v.shape {
            Shape::Unit => quote!(),
            Shape::Struct(fields) => quote!(#fields),
            Shape::Newtype(field) => quote!((#field)),
        };
        quote! {
            #(#attrs)*
            #[serde(rename = #wire)]
            #name #body
        }
    });
    quote! {
        #(#attrs)*
        #[derive(#krate::__private::serde::Serialize, #krate::__private::serde::Deserialize)]
        #[serde(crate = #serde_crate, tag = "type", content = "data")]
        #vis enum #ident {
            #(#variants,)*
        }
    }
}

/// The alias naming, in the enum's scope, the type of field `index` of `variant`.
fn field_alias(set: &MessageSet, variant: &MessageVariant, index: usize) -> Ident {
    format_ident!("__ws_{}_{}_{}", set.ident(), variant.ident, index)
}

/// Field types are written in the enum's scope, but the payload types live one module down, where a
/// payload type could shadow a type of the same name (`Point(Point)`). Aliases declared next to the enum
/// keep every field type meaning what it meant in the enum.
fn field_type_aliases(set: &MessageSet) -> TokenStream {
    let vis = set.vis();
    let aliases = set.variants.iter().flat_map(|v| {
        let types: Vec<&syn::Type> = match &v.shape {
            Shape::Unit => Vec::new(),
            Shape::Struct(fields) => fields.named.iter().map(|f| &f.ty).collect(),
            Shape::Newtype(field) => vec![&field.ty],
        };
        types.into_iter().enumerate().map(move |(i, ty)| {
            let alias = field_alias(set, v, i);
            quote! {
                #[doc(hidden)]
                #[allow(non_camel_case_types)]
                #vis type #alias = #ty;
            }
        })
    });
    quote!(#(#aliases)*)
}

/// Derives of the enum that also fit the payload types (all but `Default`).
fn copied_derives(set: &MessageSet) -> Vec<TokenStream> {
    set.attrs()
        .filter(|a| a.path().is_ident("derive"))
        .filter_map(|a| {
            let paths = a
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
                )
                .ok()?;
            let kept: Vec<&syn::Path> = paths.iter().filter(|p| !p.is_ident("Default")).collect();
            (!kept.is_empty()).then(|| quote!(#[derive(#(#kept),*)]))
        })
        .collect()
}

/// The visibility of items inside the payload module that makes them as visible as the enum itself.
fn inner_visibility(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(_) => quote!(pub),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            if path.is_ident("crate") || path.segments.first().is_some_and(|s| s.ident == "crate") {
                quote!(#vis)
            } else if path.is_ident("self") {
                quote!(pub(super))
            } else {
                quote!(pub(in super::#path))
            }
        }
    }
}

fn payload_module(set: &MessageSet) -> TokenStream {
    let (vis, module, ident) = (set.vis(), &set.module, set.ident());
    let inner = inner_visibility(vis);
    let derives = copied_derives(set);
    let direction = match set.direction {
        Direction::Inbound => "client → server",
        Direction::Outbound => "server → client",
    };
    let module_doc = format!(" Payload types of [`{ident}`] ({direction}), one per variant.");
    let structs = set
        .variants
        .iter()
        .map(|v| payload_struct(set, v, &derives, &inner));
    quote! {
        #[doc = #module_doc]
        #vis mod #module {
            #![allow(unused_imports)]
            use super::*;
            #(#structs)*
        }
    }
}

fn payload_struct(
    set: &MessageSet,
    variant: &MessageVariant,
    derives: &[TokenStream],
    vis: &TokenStream,
) -> TokenStream {
    let name = &variant.ident;
    let krate = set.krate();
    let (serde_crate, ts_crate, schemars_crate) = (
        set.private_crate("serde"),
        set.private_crate("ts_rs"),
        set.private_crate("schemars"),
    );
    let doc_attrs = variant.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let wire = &variant.wire_name;
    let summary = format!(" Payload of the `{wire}` message.");
    // Payload types of both directions may share a name (`Chat`); generated TypeScript and schemas name
    // them after the enum too (`InboundChat`, `OutboundChat`).
    let exported = format!("{}{}", set.ident(), name);
    let common = quote! {
        #[doc = #summary]
        #(#doc_attrs)*
        #(#derives)*
        #[derive(
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize,
            #krate::__private::ts_rs::TS,
            #krate::__private::schemars::JsonSchema
        )]
        #[ts(crate = #ts_crate, rename = #exported, optional_fields = nullable)]
        #[schemars(crate = #schemars_crate, rename = #exported)]
    };
    match &variant.shape {
        Shape::Unit => quote! {
            #common
            #[serde(crate = #serde_crate)]
            #vis struct #name;
        },
        Shape::Struct(fields) => {
            let fields = fields.named.iter().enumerate().map(|(i, f)| {
                let (attrs, ident) = (&f.attrs, &f.ident);
                let ty = field_alias(set, variant, i);
                let doc = (!attrs.iter().any(|a| a.path().is_ident("doc"))).then(|| {
                    let text = format!(" `{}` of the `{wire}` message.", quote!(#ident));
                    quote!(#[doc = #text])
                });
                quote!(#doc #(#attrs)* #vis #ident: super::#ty)
            });
            quote! {
                #common
                #[serde(crate = #serde_crate)]
                #vis struct #name {
                    #(#fields,)*
                }
            }
        }
        Shape::Newtype(field) => {
            let attrs = &field.attrs;
            let ty = field_alias(set, variant, 0);
            quote! {
                #common
                #[serde(crate = #serde_crate, transparent)]
                #vis struct #name(#(#attrs)* #vis super::#ty);
            }
        }
    }
}

fn trait_impls(set: &MessageSet) -> TokenStream {
    let krate = set.krate();
    let (ident, module) = (set.ident(), &set.module);
    let names: Vec<&String> = set.variants.iter().map(|v| &v.wire_name).collect();
    let name_arms = set.variants.iter().map(|v| {
        let (variant, wire) = (&v.ident, &v.wire_name);
        let pattern = match &v.shape {
            Shape::Unit => quote!(Self::#variant),
            Shape::Struct(_) => quote!(Self::#variant { .. }),
            Shape::Newtype(_) => quote!(Self::#variant(..)),
        };
        quote!(#pattern => #wire)
    });
    let direction_impl = match set.direction {
        Direction::Inbound => {
            let decode_arms = set.variants.iter().map(|v| {
                let (variant, wire) = (&v.ident, &v.wire_name);
                quote! {
                    #wire => #krate::__private::decode_payload::<#module::#variant>(data).map(::std::convert::Into::into)
                }
            });
            quote! {
                #[automatically_derived]
                impl #krate::message::InboundMessages for #ident {
                    fn decode(kind: &str, data: &str) -> #krate::Result<Self> {
                        match kind {
                            #(#decode_arms,)*
                            _ => ::std::result::Result::Err(#krate::__private::unknown_type(kind)),
                        }
                    }
                }
            }
        }
        Direction::Outbound => {
            let vis = set.vis();
            let delivery = delivery_fn(set);
            quote! {
                #[automatically_derived]
                impl #krate::message::OutboundMessages for #ident {
                    #delivery
                }

                impl #ident {
                    /// This message relayed for a client: the frame carries `"from": id`.
                    #[allow(dead_code)]
                    #vis fn sent_by(self, id: &#krate::ClientId) -> #krate::message::Relayed<Self> {
                        #krate::message::Relayed::new(self, id)
                    }
                }
            }
        }
    };
    let variant_impls = set.variants.iter().map(|v| variant_impls(set, v));
    let variant_idents = set.variants.iter().map(|v| &v.ident);
    let direction = match set.direction {
        Direction::Inbound => quote!(#krate::message::Direction::ClientToServer),
        Direction::Outbound => quote!(#krate::message::Direction::ServerToClient),
    };
    quote! {
        #[automatically_derived]
        impl #krate::message::WsMessages for #ident {
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const DIRECTION: #krate::message::Direction = #direction;

            fn visit_variants<V: #krate::message::VariantVisitor>(visitor: &mut V) {
                #(visitor.visit::<#module::#variant_idents>();)*
            }

            fn name(&self) -> &'static str {
                match self {
                    #(#name_arms,)*
                }
            }
        }
        #direction_impl
        #(#variant_impls)*
    }
}

/// `OutboundMessages::delivery`, when a variant declares a policy (the trait's default is reliable).
fn delivery_fn(set: &MessageSet) -> TokenStream {
    let krate = set.krate();
    if set.variants.iter().all(|v| v.delivery.is_none()) {
        return quote!();
    }
    let arms = set.variants.iter().filter_map(|v| {
        let (variant, wire) = (&v.ident, &v.wire_name);
        let (delivery, _) = v.delivery.as_ref()?;
        Some(match delivery {
            Delivery::Volatile => quote! {
                Self::#variant { .. } => #krate::delivery::Delivery::Volatile
            },
            Delivery::Latest(None) => quote! {
                Self::#variant { .. } => #krate::delivery::Delivery::latest(#wire)
            },
            Delivery::Latest(Some(key)) => {
                let field = format_ident!("{}", key.value(), span = key.span());
                quote! {
                    Self::#variant { #field: __ws_key, .. } => #krate::delivery::Delivery::latest_by(#wire, __ws_key)
                }
            }
        })
    });
    quote! {
        fn delivery(&self) -> #krate::delivery::Delivery {
            #[allow(unreachable_patterns)]
            match self {
                #(#arms,)*
                _ => #krate::delivery::Delivery::Reliable,
            }
        }
    }
}

/// The variant's `DeliveryPolicy`, as `Variant::DELIVERY`.
fn delivery_policy(set: &MessageSet, v: &MessageVariant) -> TokenStream {
    let krate = set.krate();
    match &v.delivery {
        None => quote!(#krate::delivery::DeliveryPolicy::Reliable),
        Some((Delivery::Volatile, _)) => quote!(#krate::delivery::DeliveryPolicy::Volatile),
        Some((Delivery::Latest(None), _)) => {
            quote!(#krate::delivery::DeliveryPolicy::Latest {
                key: ::std::option::Option::None
            })
        }
        Some((Delivery::Latest(Some(key)), _)) => {
            quote!(#krate::delivery::DeliveryPolicy::Latest { key: ::std::option::Option::Some(#key) })
        }
    }
}

fn variant_impls(set: &MessageSet, v: &MessageVariant) -> TokenStream {
    let krate = set.krate();
    let (ident, module, variant, wire) = (set.ident(), &set.module, &v.ident, &v.wire_name);
    let variant_name = v.ident.to_string();
    let reply = match &v.reply {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let has_reply = v.reply.is_some();
    let (item, is_stream) = match &v.stream {
        Some(ty) => (quote!(#ty), true),
        None => (quote!(()), false),
    };
    let delivery = delivery_policy(set, v);
    let payload = format_ident!("__ws_payload");
    let (into_enum, from_enum) = match &v.shape {
        Shape::Unit => (
            quote!(#ident::#variant),
            quote!(#ident::#variant => ::std::result::Result::Ok(#module::#variant)),
        ),
        Shape::Struct(fields) => {
            let names: Vec<_> = fields.named.iter().map(|f| &f.ident).collect();
            // Bindings get fresh names: a field may share its name with a unit struct in scope (a handler).
            let bindings: Vec<Ident> = (0..names.len())
                .map(|i| format_ident!("__ws_field{i}"))
                .collect();
            (
                quote!(#ident::#variant { #(#names: #payload.#names),* }),
                quote!(#ident::#variant { #(#names: #bindings),* } => ::std::result::Result::Ok(#module::#variant { #(#names: #bindings),* })),
            )
        }
        Shape::Newtype(_) => (
            quote!(#ident::#variant(#payload.0)),
            quote!(#ident::#variant(#payload) => ::std::result::Result::Ok(#module::#variant(#payload))),
        ),
    };
    quote! {
        #[automatically_derived]
        impl #krate::__private::VariantNamed<{ #krate::__private::variant_hash(#variant_name) }> for #ident {
            type Payload = #module::#variant;
        }

        #[automatically_derived]
        impl #krate::message::Variant for #module::#variant {
            type Set = #ident;
            type Reply = #reply;
            type Item = #item;
            const HAS_REPLY: bool = #has_reply;
            const IS_STREAM: bool = #is_stream;
            const NAME: &'static str = #wire;
            const DELIVERY: #krate::delivery::DeliveryPolicy = #delivery;
        }

        #[automatically_derived]
        impl ::std::convert::From<#module::#variant> for #ident {
            #[allow(unused_variables)]
            fn from(#payload: #module::#variant) -> Self {
                #into_enum
            }
        }

        #[automatically_derived]
        impl ::std::convert::TryFrom<#ident> for #module::#variant {
            type Error = #ident;

            fn try_from(message: #ident) -> ::std::result::Result<Self, #ident> {
                #[allow(unreachable_patterns)]
                match message {
                    #from_enum,
                    other => ::std::result::Result::Err(other),
                }
            }
        }
    }
}
