//! Attribute parsing: `#[ws_messages(outbound, rename_all = "...")]` and
//! `#[ws(rename = "...", reply = T, stream = T, volatile, latest = "field")]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Type};

use crate::ctxt::Ctxt;
use proc_macro2::Span;

use crate::symbol::{
    CRATE, INBOUND, LATEST, OUTBOUND, RENAME, RENAME_ALL, REPLY, STREAM, VOLATILE, WS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

/// How variant names become wire names, as serde's `rename_all` does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    const ALL: [(&'static str, Self); 8] = [
        ("lowercase", Self::Lower),
        ("UPPERCASE", Self::Upper),
        ("PascalCase", Self::Pascal),
        ("camelCase", Self::Camel),
        ("snake_case", Self::Snake),
        ("SCREAMING_SNAKE_CASE", Self::ScreamingSnake),
        ("kebab-case", Self::Kebab),
        ("SCREAMING-KEBAB-CASE", Self::ScreamingKebab),
    ];

    fn from_str(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, rule)| *rule)
    }

    /// Applies the rule to a `PascalCase` variant name, exactly as serde does.
    pub(crate) fn apply(self, variant: &str) -> String {
        let snake = || {
            let mut out = String::new();
            for (i, ch) in variant.char_indices() {
                if i > 0 && ch.is_uppercase() {
                    out.push('_');
                }
                out.push(ch.to_ascii_lowercase());
            }
            out
        };
        match self {
            Self::Lower => variant.to_ascii_lowercase(),
            Self::Upper => variant.to_ascii_uppercase(),
            Self::Pascal => variant.to_owned(),
            Self::Camel => variant[..1].to_ascii_lowercase() + &variant[1..],
            Self::Snake => snake(),
            Self::ScreamingSnake => snake().to_ascii_uppercase(),
            Self::Kebab => snake().replace('_', "-"),
            Self::ScreamingKebab => snake().to_ascii_uppercase().replace('_', "-"),
        }
    }
}

pub(crate) struct MessagesArgs {
    pub(crate) direction: Direction,
    pub(crate) rename_all: RenameRule,
    pub(crate) krate: syn::Path,
}

/// `::ws_core`, the path generated code uses unless told otherwise with `crate = path`.
pub(crate) fn default_crate() -> syn::Path {
    syn::parse_quote!(::ws_core)
}

/// `::ws_protocol`, the default of the macros as `ws_protocol` re-exports them (for crates that declare
/// messages without depending on the server, such as a protocol crate shared with a wasm client).
pub(crate) fn protocol_crate() -> syn::Path {
    syn::parse_quote!(::ws_protocol)
}

/// `crate = path`, the path to `ws_core` when it is not a direct dependency under that name.
fn crate_path(meta: &ParseNestedMeta<'_>, krate: &mut Option<syn::Path>) -> syn::Result<()> {
    if krate.is_some() {
        return Err(meta.error("duplicate `crate`"));
    }
    *krate = Some(meta.value()?.parse()?);
    Ok(())
}

/// Parses the arguments of `#[ws_messages(...)]`.
pub(crate) fn messages_args(
    args: TokenStream,
    cx: &mut Ctxt,
    default: fn() -> syn::Path,
) -> MessagesArgs {
    let mut direction: Option<Direction> = None;
    let mut rename_all: Option<RenameRule> = None;
    let mut krate: Option<syn::Path> = None;
    let parser = syn::meta::parser(|meta| {
        let mut set_direction = |d: Direction, meta: &ParseNestedMeta<'_>| {
            if direction.is_some() {
                return Err(
                    meta.error("the direction is given twice: use one of `inbound` or `outbound`")
                );
            }
            direction = Some(d);
            Ok(())
        };
        if meta.path.is_ident(OUTBOUND) {
            set_direction(Direction::Outbound, &meta)
        } else if meta.path.is_ident(INBOUND) {
            set_direction(Direction::Inbound, &meta)
        } else if meta.path.is_ident(RENAME_ALL) {
            let lit: LitStr = meta.value()?.parse()?;
            if rename_all.is_some() {
                return Err(meta.error("duplicate `rename_all`"));
            }
            let rule = RenameRule::from_str(&lit.value()).ok_or_else(|| {
                let names: Vec<&str> = RenameRule::ALL.iter().map(|(n, _)| *n).collect();
                syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown `rename_all` rule; expected one of {}",
                        names.join(", ")
                    ),
                )
            })?;
            rename_all = Some(rule);
            Ok(())
        } else if meta.path.is_ident(CRATE) {
            crate_path(&meta, &mut krate)
        } else {
            Err(meta.error("unknown `ws_messages` argument; expected `inbound`, `outbound`, `rename_all = \"...\"` or `crate = path`"))
        }
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.push(err);
    }
    MessagesArgs {
        direction: direction.unwrap_or(Direction::Inbound),
        rename_all: rename_all.unwrap_or(RenameRule::Snake),
        krate: krate.unwrap_or_else(default),
    }
}

/// `#[on(target)]` or `#[on(target, crate = path)]`.
pub(crate) struct OnArgs {
    pub(crate) target: syn::Path,
    pub(crate) krate: syn::Path,
}

impl syn::parse::Parse for OnArgs {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let target: syn::Path = input.parse()?;
        let mut krate = None;
        if input.parse::<Option<syn::Token![,]>>()?.is_some() && !input.is_empty() {
            let parser = syn::meta::parser(|meta| {
                if meta.path.is_ident(CRATE) {
                    crate_path(&meta, &mut krate)
                } else {
                    Err(meta.error("unknown `on` argument; expected `crate = path`"))
                }
            });
            syn::parse::Parser::parse2(parser, input.parse::<TokenStream>()?)?;
        }
        Ok(Self {
            target,
            krate: krate.unwrap_or_else(default_crate),
        })
    }
}

/// A delivery policy other than the default (reliable), as written on a variant.
#[derive(Clone)]
pub(crate) enum Delivery {
    Volatile,
    /// `latest`, or `latest = "field"`.
    Latest(Option<LitStr>),
}

#[derive(Default)]
pub(crate) struct VariantArgs {
    pub(crate) rename: Option<LitStr>,
    pub(crate) reply: Option<Type>,
    /// `stream = T`: the request is answered with a stream of `T`.
    pub(crate) stream: Option<Type>,
    /// The policy and where it is written.
    pub(crate) delivery: Option<(Delivery, Span)>,
}

/// Parses every `#[ws(...)]` on a variant.
pub(crate) fn variant_args(attrs: &[Attribute], cx: &mut Ctxt) -> VariantArgs {
    let mut args = VariantArgs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident(WS)) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(RENAME) {
                let lit: LitStr = meta.value()?.parse()?;
                if args.rename.is_some() {
                    return Err(syn::Error::new(lit.span(), "duplicate `rename`"));
                }
                args.rename = Some(lit);
                Ok(())
            } else if meta.path.is_ident(REPLY) {
                let ty: Type = meta.value()?.parse()?;
                if args.reply.is_some() {
                    return Err(syn::Error::new_spanned(&ty, "duplicate `reply`"));
                }
                args.reply = Some(ty);
                Ok(())
            } else if meta.path.is_ident(STREAM) {
                let ty: Type = meta.value()?.parse()?;
                if args.stream.is_some() {
                    return Err(syn::Error::new_spanned(&ty, "duplicate `stream`"));
                }
                args.stream = Some(ty);
                Ok(())
            } else if meta.path.is_ident(VOLATILE) || meta.path.is_ident(LATEST) {
                let span = meta.path.require_ident()?.span();
                if args.delivery.is_some() {
                    return Err(meta.error(
                        "a variant has one delivery policy: `volatile` or `latest`, not both",
                    ));
                }
                let delivery = if meta.path.is_ident(VOLATILE) {
                    Delivery::Volatile
                } else if meta.input.peek(syn::Token![=]) {
                    Delivery::Latest(Some(meta.value()?.parse()?))
                } else {
                    Delivery::Latest(None)
                };
                args.delivery = Some((delivery, span));
                Ok(())
            } else {
                Err(meta.error(
                    "unknown `ws` attribute; expected `rename = \"...\"`, `reply = Type`, `stream = Type`, `volatile`, `latest` or `latest = \"field\"`",
                ))
            }
        });
        if let Err(err) = parsed {
            cx.push(err);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::RenameRule;

    #[test]
    fn rename_rules_match_serde() {
        let cases = [
            (RenameRule::Snake, "WhoAmI", "who_am_i"),
            (RenameRule::Snake, "Chat", "chat"),
            (RenameRule::Camel, "AdminPurge", "adminPurge"),
            (RenameRule::Kebab, "AdminPurge", "admin-purge"),
            (RenameRule::ScreamingSnake, "AdminPurge", "ADMIN_PURGE"),
            (RenameRule::ScreamingKebab, "AdminPurge", "ADMIN-PURGE"),
            (RenameRule::Lower, "AdminPurge", "adminpurge"),
            (RenameRule::Upper, "AdminPurge", "ADMINPURGE"),
            (RenameRule::Pascal, "AdminPurge", "AdminPurge"),
        ];
        for (rule, input, expected) in cases {
            assert_eq!(rule.apply(input), expected, "{rule:?}");
        }
    }
}
