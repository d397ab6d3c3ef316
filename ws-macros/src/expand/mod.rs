//! Code generation: every generated item goes through `::ws_core` paths, and impls sit in `const _` blocks.

mod handler;
mod messages;
#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) use self::handler::handler;
pub(crate) use self::messages::message_set;

/// The derives every type carried in messages needs, through `ws_core`'s re-exports.
pub(crate) fn payload(item: &syn::DeriveInput) -> TokenStream {
    quote! {
        #[derive(
            ::ws_core::__private::serde::Serialize,
            ::ws_core::__private::serde::Deserialize,
            ::ws_core::__private::ts_rs::TS,
            ::ws_core::__private::schemars::JsonSchema
        )]
        #[serde(crate = "::ws_core::__private::serde")]
        #[ts(crate = "::ws_core::__private::ts_rs", optional_fields = nullable)]
        #[schemars(crate = "::ws_core::__private::schemars")]
        #item
    }
}
