//! Expansion snapshots: the generated code for the chat protocol, pretty-printed, reviewed like code.

use quote::quote;

fn pretty(tokens: proc_macro2::TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

#[test]
fn chat_inbound_messages() {
    let output = crate::messages(
        quote!(),
        quote! {
            /// What clients send.
            #[derive(Debug, Clone)]
            pub enum Inbound {
                Chat { text: String, room: Option<String> },
                #[ws(reply = RoomJoined)]
                Join { room: String },
                Move(Point),
                #[ws(rename = "admin:purge", reply = Purged)]
                AdminPurge,
            }
        },
        crate::attr::default_crate,
    )
    .expect("expands");
    insta::assert_snapshot!(pretty(output));
}

#[test]
fn chat_outbound_messages() {
    let output = crate::messages(
        quote!(outbound, rename_all = "kebab-case"),
        quote! {
            pub(crate) enum Outbound {
                Welcome { client_id: String },
                UserLeft,
            }
        },
        crate::attr::default_crate,
    )
    .expect("expands");
    insta::assert_snapshot!(pretty(output));
}

#[test]
fn chat_handler() {
    let output = crate::handler(
        quote!(Inbound::Join),
        quote! {
            /// Joins a room.
            async fn join(client: Client, msg: inbound::Join) -> Result<RoomJoined, Error> {
                let joined = client.join(&msg.room)?;
                Ok(RoomJoined { room: msg.room, joined })
            }
        },
    )
    .expect("expands");
    insta::assert_snapshot!(pretty(output));
}

#[test]
fn errors_are_collected_not_stopped_at_the_first() {
    let err = crate::messages(
        quote!(),
        quote! {
            enum Inbound<T> {
                #[ws(rename = "$error")]
                A(T, T),
                #[ws(rename = "b")]
                B,
                #[ws(rename = "b")]
                C,
            }
        },
        crate::attr::default_crate,
    )
    .expect_err("invalid");
    let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
    assert_eq!(
        messages,
        [
            "`#[ws_messages]` enums cannot be generic (type parameter): each wire name needs one concrete type",
            "a message variant carries one payload: use named fields, or one type in parentheses",
            "the wire name `b` is already used by variant `B`",
        ]
    );
}
