//! Chromium's DevTools over a pipe, never a TCP port. With
//! `--remote-debugging-port` any local process (any user's) that finds the
//! port can read `/json/version` and drive the browser — with the person's
//! logins. Chromium is started with `--remote-debugging-pipe` instead (it
//! reads commands from fd 3 and writes replies to fd 4, each message
//! ending in a NUL byte), and browser-agent serves that pipe to
//! chromiumoxide (which speaks websocket only) on 127.0.0.1 at a path with
//! a 128-bit random token: a connection to any other path is refused
//! before the handshake.

use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// The child's ends: it reads commands from the first (as fd 3) and
/// writes replies to the second (as fd 4).
#[derive(Debug)]
pub struct ChildEnds(OwnedFd, OwnedFd);

/// Our ends: commands go into the first, replies come out of the second.
#[derive(Debug)]
pub struct ParentEnds(OwnedFd, OwnedFd);

/// Two pipes for one Chromium.
pub fn pipes() -> io::Result<(ChildEnds, ParentEnds)> {
    let (cmd_r, cmd_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (reply_r, reply_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((ChildEnds(cmd_r, reply_w), ParentEnds(cmd_w, reply_r)))
}

/// Have `cmd`'s child find the pipes at fds 3 and 4. Keep `child` until
/// the spawn is done (then drop it: the parent must not hold the child's
/// ends, or it would never see the pipe close).
pub fn attach(cmd: &mut tokio::process::Command, child: &ChildEnds) {
    let (r, w) = (child.0.as_raw_fd(), child.1.as_raw_fd());
    // SAFETY: between fork and exec only async-signal-safe syscalls (fcntl,
    // dup2, close) on descriptors this process owns.
    unsafe {
        cmd.pre_exec(move || {
            let check = |v: libc::c_int| {
                if v == -1 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(v)
                }
            };
            // Above 4 first, so one dup2 cannot clobber the other's source.
            let r2 = check(libc::fcntl(r, libc::F_DUPFD, 10))?;
            let w2 = check(libc::fcntl(w, libc::F_DUPFD, 10))?;
            check(libc::dup2(r2, 3))?;
            check(libc::dup2(w2, 4))?;
            libc::close(r2);
            libc::close(w2);
            Ok(())
        });
    }
}

/// The websocket chromiumoxide connects to; the relay stops when dropped.
#[derive(Debug)]
pub struct Bridge {
    /// `ws://127.0.0.1:PORT/devtools/browser/TOKEN`.
    pub ws_url: String,
    task: JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn token() -> io::Result<String> {
    let mut b = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Serve `ends` on a loopback websocket; one client at a time (a
/// reconnect takes over the same pipe).
// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
pub async fn serve(ends: ParentEnds) -> io::Result<Bridge> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let path = format!("/devtools/browser/{}", token()?);
    let ws_url = format!("ws://{}{path}", listener.local_addr()?);
    let mut to_chromium = tokio::net::unix::pipe::Sender::from_owned_fd(ends.0)?;
    let mut from_chromium =
        BufReader::new(tokio::net::unix::pipe::Receiver::from_owned_fd(ends.1)?);
    let task = tokio::spawn(async move {
        // Kept across clients: a message half read is never lost.
        let mut pending = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            // Many small messages each way: Nagle's algorithm with delayed
            // ACKs would hold some for 40 ms.
            let _ = stream.set_nodelay(true);
            let want = path.clone();
            let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                if req.uri().path() == want {
                    Ok(resp)
                } else {
                    let mut e = ErrorResponse::new(Some("not found".into()));
                    *e.status_mut() = async_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                    Err(e)
                }
            };
            let Ok(ws) = async_tungstenite::tokio::accept_hdr_async(stream, check).await else {
                tracing::warn!("a DevTools connection with the wrong token was refused");
                continue;
            };
            let (mut ws_tx, mut ws_rx) = ws.split();
            loop {
                tokio::select! {
                    msg = ws_rx.next() => match msg {
                        Some(Ok(Message::Text(t))) => {
                            let sent = async {
                                to_chromium.write_all(t.as_bytes()).await?;
                                to_chromium.write_all(&[0]).await
                            };
                            if sent.await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    },
                    read = from_chromium.read_until(0, &mut pending) => match read {
                        Ok(0) | Err(_) => {
                            // Chromium closed its end: so do we.
                            let _ = ws_tx.close(None).await;
                            return;
                        }
                        Ok(_) => {
                            if pending.last() == Some(&0) {
                                pending.pop();
                            }
                            let text = String::from_utf8_lossy(&pending).into_owned();
                            pending.clear();
                            if ws_tx.send(Message::text(text)).await.is_err() {
                                break;
                            }
                        }
                    },
                }
            }
        }
    });
    Ok(Bridge { ws_url, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_cross_the_pipe_and_a_wrong_token_is_refused() {
        // A stand-in for Chromium's side: the child's ends, read and
        // written here.
        let (child, parent) = pipes().unwrap();
        let bridge = serve(parent).await.unwrap();
        let mut cmd_r =
            BufReader::new(tokio::net::unix::pipe::Receiver::from_owned_fd(child.0).unwrap());
        let mut reply_w = tokio::net::unix::pipe::Sender::from_owned_fd(child.1).unwrap();

        let wrong = bridge.ws_url.rsplit_once('/').unwrap().0.to_string() + "/nope";
        assert!(async_tungstenite::tokio::connect_async(wrong)
            .await
            .is_err());

        let (mut ws, _) = async_tungstenite::tokio::connect_async(bridge.ws_url.clone())
            .await
            .unwrap();
        ws.send(Message::text(r#"{"id":1}"#)).await.unwrap();
        let mut got = Vec::new();
        cmd_r.read_until(0, &mut got).await.unwrap();
        assert_eq!(got, b"{\"id\":1}\0");
        reply_w
            .write_all(b"{\"id\":1,\"result\":{}}\0{\"method\":\"x\"}\0")
            .await
            .unwrap();
        let a = ws.next().await.unwrap().unwrap();
        let b = ws.next().await.unwrap().unwrap();
        assert_eq!(a.into_text().unwrap().as_str(), r#"{"id":1,"result":{}}"#);
        assert_eq!(b.into_text().unwrap().as_str(), r#"{"method":"x"}"#);
        // Chromium gone: the websocket closes.
        drop(reply_w);
        let end = ws.next().await;
        assert!(
            matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
            "{end:?}"
        );
    }
}
