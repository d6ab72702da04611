//! Asks a managed server, from a chosen source address, whether its client authentication rules
//! admit that address: the first step of PostgreSQL's protocol, without logging in. sqlx cannot
//! pick a source address; a `TcpSocket` bound before connecting can.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// What the server answered a startup message from one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It asked for the password: a rule for this address matched.
    Admitted,
    /// It refused before any password: no rule admits this address (SQLSTATE 28000).
    Refused(String),
}

/// Connects from `source` to `server` and sends a startup message for `user` and `database`.
pub async fn probe(
    source: IpAddr,
    server: SocketAddr,
    user: &str,
    database: &str,
) -> Result<Admission> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    let mut stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting from {source} to {server}"))?;
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = i32::try_from(body.len() + 4).context("startup message length")?;
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    stream.write_all(&msg).await?;

    let kind = stream.read_u8().await.context("reading the answer")?;
    let len = stream.read_i32().await.context("reading the answer")?;
    let len = usize::try_from(len - 4).context("answer length")?;
    let mut answer = vec![0u8; len];
    stream.read_exact(&mut answer).await?;
    match kind {
        b'R' => Ok(Admission::Admitted),
        b'E' => {
            // Fields: a type byte, then a NUL-terminated string; `C` is the SQLSTATE, `M` the text.
            let mut code = String::new();
            let mut message = String::new();
            for field in answer.split(|b| *b == 0).filter(|f| !f.is_empty()) {
                let text = String::from_utf8_lossy(&field[1..]).into_owned();
                match field[0] {
                    b'C' => code = text,
                    b'M' => message = text,
                    _ => {}
                }
            }
            if code != "28000" {
                bail!("the server answered {code}: {message}");
            }
            Ok(Admission::Refused(message))
        }
        other => bail!("unexpected answer {:?} to a startup message", other as char),
    }
}
