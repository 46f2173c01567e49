//! A tiny HTTP/1.1 server on 127.0.0.1 for delivery tests: it records what arrives and answers as told. Written on
//! raw sockets so that a test controls exactly what goes on the wire (a stalled answer, an endless body).

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paygate_outbound::ssrf::{HostResolver, ResolveFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most a test server reads of one request head and body.
const REQUEST_HEAD_MAX: usize = 64 * 1024;
const REQUEST_BODY_MAX: usize = 1024 * 1024;
/// An endless body stops by itself after this many bytes, should a client read on and on.
const ENDLESS_MAX: usize = 64 * 1024 * 1024;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How the server answers a request.
pub enum Reply {
    /// A complete response with `Content-Length`.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Says nothing for this long, then closes.
    Stall(Duration),
    /// `200` and a body without length that goes on until the client hangs up (or `ENDLESS_MAX`).
    Endless,
}

impl Reply {
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::Status {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }
}

type Handler = dyn Fn(&Captured) -> Reply + Send + Sync;

/// A running server; stops accepting when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Captured>>>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Captured) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let requests = Arc::clone(&requests);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let requests = Arc::clone(&requests);
                    let handler = Arc::clone(&handler);
                    tokio::spawn(async move {
                        let _ = serve_one(stream, requests, handler).await;
                    });
                }
            })
        };
        TestServer {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: TcpStream,
    requests: Arc<Mutex<Vec<Captured>>>,
    handler: Arc<Handler>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > REQUEST_HEAD_MAX {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(REQUEST_BODY_MAX);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let captured = Captured {
        method,
        path,
        headers,
        body,
    };
    let reply = handler(&captured);
    requests.lock().unwrap().push(captured);

    match reply {
        Reply::Status { status, headers, body } => {
            let mut out = format!(
                "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await?;
        }
        Reply::Stall(duration) => {
            tokio::time::sleep(duration).await;
        }
        Reply::Endless => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
                .await?;
            let block = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < ENDLESS_MAX {
                stream.write_all(&block).await?;
                sent += block.len();
            }
        }
    }
    Ok(())
}

/// A resolver with scripted answers: the n-th lookup gets `answers[n]` (the last one repeats). Counts lookups.
pub struct ScriptedResolver {
    answers: Vec<Vec<IpAddr>>,
    pub calls: AtomicUsize,
}

impl ScriptedResolver {
    pub fn new(answers: Vec<Vec<IpAddr>>) -> ScriptedResolver {
        ScriptedResolver {
            answers,
            calls: AtomicUsize::new(0),
        }
    }

    pub fn always(ip: &str) -> ScriptedResolver {
        ScriptedResolver::new(vec![vec![ip.parse().unwrap()]])
    }

    pub fn call_count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl HostResolver for ScriptedResolver {
    fn resolve<'a>(&'a self, _host: &'a str) -> ResolveFuture<'a> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answers
            .get(n)
            .or_else(|| self.answers.last())
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(answer) })
    }
}
