//! The chat protocol: what each message does (see the README's chat section for the wire contract).

use serde::Deserialize;
use serde_json::json;
use ws_core::{AuthRequest, Client, ClientData, Config, ConfigError, Error, Message, Server};

#[derive(Deserialize)]
struct Chat {
    text: String,
    room: Option<String>,
}

#[derive(Deserialize)]
struct Room {
    room: String,
}

#[derive(Deserialize)]
struct Dm {
    to: String,
    text: String,
}

/// The user name the token stands for.
fn user(client: &Client) -> String {
    client
        .get_metadata("user")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn authenticate(req: AuthRequest) -> Result<ClientData, Error> {
    let token = req.query("token").filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| Error::forbidden("a non-empty ?token= is required"))?;
    let plan = if token == "admin" { "admin" } else { "member" };
    Ok(ClientData::new()
        .metadata("user", token)
        .metadata("plan", plan))
}

async fn chat(client: Client, msg: Message) -> Result<(), Error> {
    let chat: Chat = msg.decode()?;
    let mut data = json!({ "text": chat.text, "user": user(&client) });
    let server = client.server();
    match chat.room {
        Some(room) => {
            data["room"] = json!(room);
            server.broadcast_to_group(
                &room,
                &Message::new("chat", data).with_from(client.id().as_str()),
            );
        }
        None => server.broadcast(&Message::new("chat", data).with_from(client.id().as_str())),
    }
    Ok(())
}

async fn join(client: Client, msg: Message) -> Result<serde_json::Value, Error> {
    let Room { room } = msg.decode()?;
    let joined = client.join(&room)?;
    Ok(json!({ "room": room, "joined": joined }))
}

async fn leave(client: Client, msg: Message) -> Result<serde_json::Value, Error> {
    let Room { room } = msg.decode()?;
    let left = client.leave(&room);
    Ok(json!({ "room": room, "left": left }))
}

async fn dm(client: Client, msg: Message) -> Result<(), Error> {
    let dm: Dm = msg.decode()?;
    let out = Message::new("dm", json!({ "text": dm.text, "user": user(&client) }))
        .with_from(client.id().as_str());
    match client.server().send_to_client(&dm.to, &out) {
        Ok(()) => Ok(()),
        // A request learns it through its `$error` reply; a plain message through an `$error` frame.
        Err(err) if msg.id.is_some() => Err(err),
        Err(err) => {
            client.send_error(&err)?;
            Ok(())
        }
    }
}

async fn whoami(client: Client, _: Message) -> Result<serde_json::Value, Error> {
    Ok(
        json!({ "client_id": client.id().as_str(), "user": user(&client), "groups": client.groups() }),
    )
}

async fn purge(client: Client, _: Message) -> Result<serde_json::Value, Error> {
    if client
        .get_metadata("plan")
        .as_ref()
        .and_then(|p| p.as_str())
        != Some("admin")
    {
        return Err(Error::forbidden("admin:purge needs the admin plan"));
    }
    Ok(json!({ "purged": true }))
}

/// The chat server with every handler registered.
pub(crate) fn build(config: Config) -> Result<Server, ConfigError> {
    Server::builder(config)
        .auth(authenticate)
        .on_connect(|client| async move {
            let _ = client.send_json(
                "welcome",
                &json!({ "client_id": client.id().as_str(), "message": "connected" }),
            );
        })
        .on("chat", chat)
        .on("join", join)
        .on("leave", leave)
        .on("dm", dm)
        .on("whoami", whoami)
        .on("admin:purge", purge)
        .build()
}
