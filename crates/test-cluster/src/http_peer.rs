//! A small HTTP/1.1 server on a free loopback port for tests: serves fixed responses per path
//! (changeable while running) and records every request's path, query and headers. It is the
//! protocol peer of the HTTP-shaped scalers (metrics-api endpoints, a prometheus scrape target).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One canned response.
#[derive(Clone, Debug)]
pub struct Canned {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Body.
    pub body: String,
}

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path without the query.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Canned>,
    received: Vec<Received>,
}

/// The running server; stops when dropped.
pub struct HttpPeer {
    /// Port on 127.0.0.1.
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl HttpPeer {
    /// Starts serving (404 for unknown paths).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = Arc::clone(&s);
                        std::thread::spawn(move || serve(stream, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, state, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves `body` at `path` with status 200.
    pub fn set(&self, path: &str, content_type: &str, body: &str) {
        self.set_status(path, 200, content_type, body);
    }

    /// Serves `body` at `path` with `status`.
    pub fn set_status(&self, path: &str, status: u16, content_type: &str, body: &str) {
        self.state.lock().unwrap().routes.insert(
            path.to_owned(),
            Canned {
                status,
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            },
        );
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests so far to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target
        .split_once('?')
        .map_or((target.clone(), String::new()), |(p, q)| {
            (p.to_owned(), q.to_owned())
        });
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let canned = {
        let mut st = state.lock().unwrap();
        st.received.push(Received {
            path: path.clone(),
            query,
            headers,
        });
        st.routes.get(&path).cloned()
    };
    let canned = canned.unwrap_or(Canned {
        status: 404,
        content_type: "text/plain".into(),
        body: "not found".into(),
    });
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        canned.status,
        canned.content_type,
        canned.body.len(),
        canned.body
    );
    let _ = out.flush();
}
