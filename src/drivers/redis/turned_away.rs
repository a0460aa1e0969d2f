//! A server that turns a new connection away: Redis answers a client past its `maxclients`
//! (`-ERR max number of clients reached`), or one it does not let in while in protected mode
//! (`-DENIED …`), as soon as it accepts the connection, and closes it without reading. The
//! client library, writing its first command to the closed socket, reports only a broken pipe
//! or a reset, which sends an operator looking at the network. So when a connection made to a
//! server dies at once, another is opened and its first line read: what the server said.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, RedisError};
use tokio::io::AsyncReadExt;

use crate::Error;

/// How long the second connection waits for the server's words.
const LISTEN: Duration = Duration::from_millis(500);

/// The error for a connection to `info` that failed with `error`, when the server turned it
/// away and says why; `None` otherwise (the caller reports `error` as it is).
pub(super) async fn turned_away(error: &RedisError, info: &ConnectionInfo) -> Option<Error> {
    if !error.is_connection_dropped() || error.is_connection_refusal() {
        return None;
    }
    let said = first_line(info.addr()).await?;
    let words = said.strip_prefix('-')?;
    let message = format!("the Redis server turned the connection away: {words}");
    Some(if words.starts_with("DENIED") {
        // Protected mode: only a change of the server's settings lets this client in.
        Error::backend(message)
    } else {
        // Past `maxclients`: a connection may be let in once others close.
        Error::unavailable(message, None)
    })
}

/// The first line a new connection to `address` reads, if one comes within [`LISTEN`]. Over
/// TLS nothing is read: the words would come after a handshake.
async fn first_line(address: &ConnectionAddr) -> Option<String> {
    let mut said = [0u8; 1024];
    let read = async {
        match address {
            ConnectionAddr::Tcp(host, port) => {
                let mut stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.read(&mut said).await
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let mut stream = tokio::net::UnixStream::connect(path).await?;
                stream.read(&mut said).await
            }
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    };
    let read = tokio::time::timeout(LISTEN, read).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&said[..read]);
    let line = text.lines().next()?.trim_end();
    (!line.is_empty()).then(|| line.to_owned())
}
