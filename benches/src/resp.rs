//! A minimal async redis client (RESP2) for the bench's own connections: setup commands,
//! `CLIENT LIST`, `INFO commandstats`, and a `MONITOR` stream that timestamps every `LLEN`.
//! Every connection names itself `bench…` so it can be told apart from the operator's.

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Value>),
}

impl Value {
    pub fn text(&self) -> String {
        match self {
            Value::Simple(s) | Value::Error(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bulk(b) => b.clone().unwrap_or_default(),
            Value::Array(a) => a.iter().map(Value::text).collect::<Vec<_>>().join("\n"),
        }
    }
}

pub struct Conn {
    stream: BufReader<TcpStream>,
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Conn {
    /// Connects to `addr` and names the connection `name` (it must start with `bench`).
    pub async fn connect(addr: &str, name: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to redis at {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream: BufReader::new(stream),
        };
        conn.cmd(&["CLIENT", "SETNAME", name]).await?;
        Ok(conn)
    }

    pub async fn cmd(&mut self, args: &[&str]) -> anyhow::Result<Value> {
        self.stream.get_mut().write_all(&encode(args)).await?;
        let reply = self.read().await?;
        if let Value::Error(e) = &reply {
            bail!("redis {:?}: {e}", args.first());
        }
        Ok(reply)
    }

    /// Sends all commands at once, then reads every reply (pipelining).
    pub async fn pipeline(&mut self, commands: &[Vec<String>]) -> anyhow::Result<Vec<Value>> {
        let mut buf = Vec::new();
        for c in commands {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            buf.extend_from_slice(&encode(&args));
        }
        self.stream.get_mut().write_all(&buf).await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            let r = self.read().await?;
            if let Value::Error(e) = &r {
                bail!("redis pipeline: {e}");
            }
            replies.push(r);
        }
        Ok(replies)
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let n = self.stream.read_line(&mut line).await?;
        if n == 0 {
            bail!("redis closed the connection");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read(&mut self) -> futures::future::BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async move {
            let line = self.line().await?;
            let (kind, rest) = line.split_at(line.len().min(1));
            Ok(match kind {
                "+" => Value::Simple(rest.to_string()),
                "-" => Value::Error(rest.to_string()),
                ":" => Value::Int(rest.parse()?),
                "$" => {
                    let len: i64 = rest.parse()?;
                    if len < 0 {
                        Value::Bulk(None)
                    } else {
                        let mut buf = vec![0_u8; usize::try_from(len)? + 2];
                        self.stream.read_exact(&mut buf).await?;
                        buf.truncate(buf.len() - 2);
                        Value::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                    }
                }
                "*" => {
                    let count: i64 = rest.parse()?;
                    let mut items = Vec::new();
                    for _ in 0..count.max(0) {
                        items.push(self.read().await?);
                    }
                    Value::Array(items)
                }
                _ => bail!("unexpected redis reply {line:?}"),
            })
        })
    }

    /// `CLIENT LIST`: (all normal clients, those not named `bench…`), the asking one included in
    /// the first figure.
    pub async fn client_counts(&mut self) -> anyhow::Result<(usize, usize)> {
        let list = self.cmd(&["CLIENT", "LIST"]).await?.text();
        let all: Vec<&str> = list.lines().filter(|l| l.contains("addr=")).collect();
        let others = all
            .iter()
            .filter(|l| !l.split(' ').any(|field| field.starts_with("name=bench")))
            .count();
        Ok((all.len(), others))
    }

    /// `calls` of `cmdstat_<command>` from `INFO commandstats` (0 when never called).
    pub async fn command_calls(&mut self, command: &str) -> anyhow::Result<u64> {
        let info = self.cmd(&["INFO", "commandstats"]).await?.text();
        let prefix = format!("cmdstat_{}:", command.to_ascii_lowercase());
        for line in info.lines() {
            if let Some(rest) = line.strip_prefix(&prefix) {
                for field in rest.split(',') {
                    if let Some(v) = field.strip_prefix("calls=") {
                        return Ok(v.trim().parse()?);
                    }
                }
            }
        }
        Ok(0)
    }

    /// `process_id` from `INFO server`.
    pub async fn server_pid(&mut self) -> anyhow::Result<u32> {
        let info = self.cmd(&["INFO", "server"]).await?.text();
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .context("no process_id in INFO server")?
            .trim()
            .parse()
            .context("process_id")
    }
}

/// One `LLEN` the server saw: its timestamp (seconds since the epoch, redis clock) and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub at: f64,
    pub key: String,
}

/// Parses one `MONITOR` line: `+1700000000.123456 [0 127.0.0.1:4242] "LLEN" "q-1"`.
/// Returns the timestamp, the command (upper-cased) and the first argument.
pub fn parse_monitor_line(line: &str) -> Option<(f64, String, Option<String>)> {
    let line = line.strip_prefix('+')?;
    let (ts, rest) = line.split_once(' ')?;
    let at: f64 = ts.parse().ok()?;
    let (_, args) = rest.split_once("] ")?;
    let mut quoted = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    let mut escaped = false;
    for c in args.chars() {
        if in_quote {
            if escaped {
                current.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
                quoted.push(std::mem::take(&mut current));
                if quoted.len() == 2 {
                    break;
                }
            } else {
                current.push(c);
            }
        } else if c == '"' {
            in_quote = true;
        }
    }
    let mut it = quoted.into_iter();
    let command = it.next()?.to_ascii_uppercase();
    Some((at, command, it.next()))
}

/// A running `MONITOR` that keeps every `LLEN` it sees.
pub struct Monitor {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    pub async fn start(addr: &str) -> anyhow::Result<Self> {
        let mut conn = Conn::connect(addr, "bench-monitor").await?;
        let ok = conn.cmd(&["MONITOR"]).await?;
        if ok != Value::Simple("OK".into()) {
            bail!("MONITOR answered {ok:?}");
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                match conn.stream.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if let Some((at, command, Some(key))) = parse_monitor_line(line.trim_end())
                    && command == "LLEN"
                    && let Ok(mut s) = sink.lock()
                {
                    s.push(Seen { at, key });
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// Stops monitoring and returns what was seen.
    pub fn stop(self) -> Vec<Seen> {
        self.task.abort();
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines() {
        assert_eq!(
            parse_monitor_line(r#"+1700000000.123456 [0 127.0.0.1:4242] "LLEN" "q-17""#),
            Some((1_700_000_000.123_456, "LLEN".into(), Some("q-17".into())))
        );
        assert_eq!(
            parse_monitor_line(r#"+1.5 [0 unix:/x] "llen" "a\"b" "more""#),
            Some((1.5, "LLEN".into(), Some("a\"b".into())))
        );
        assert_eq!(
            parse_monitor_line(r#"+2.0 [0 127.0.0.1:1] "PING""#),
            Some((2.0, "PING".into(), None))
        );
        assert_eq!(parse_monitor_line("+OK"), None);
    }
}
