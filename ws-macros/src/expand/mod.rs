//! Code generation: every generated item goes through the crate path (`::ws_core`, `::ws_protocol`, or the
//! user's `crate = path`), and impls sit in `const _` blocks.

mod handler;
mod messages;
#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

pub(crate) use self::handler::handler;
pub(crate) use self::messages::message_set;

/// The derives every type carried in messages needs, through the crate's re-exports.
pub(crate) fn payload(item: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let path =
        |name: &str| format!("{}::__private::{name}", krate.to_token_stream()).replace(' ', "");
    let (serde, ts_rs, schemars) = (path("serde"), path("ts_rs"), path("schemars"));
    quote! {
        #[derive(
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize,
            #krate::__private::ts_rs::TS,
            #krate::__private::schemars::JsonSchema
        )]
        #[serde(crate = #serde)]
        #[ts(crate = #ts_rs, optional_fields = nullable)]
        #[schemars(crate = #schemars)]
        #item
    }
}
