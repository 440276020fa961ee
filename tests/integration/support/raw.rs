//! Byte-level clients for what reqwest will not send: CONNECT with custom headers,
//! pipelined keep-alive requests, malformed input.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP/1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A connection that writes raw bytes and reads one response at a time.
#[derive(Debug)]
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// A connection to `addr` from the local address `from` (another loopback address
    /// is another client source).
    pub async fn open_from(from: std::net::IpAddr, addr: SocketAddr) -> Self {
        let socket = match from {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        Self {
            stream: socket.connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// `CONNECT authority` with `headers` on a new connection to `proxy`: the tunnel when
    /// the answer is 200, else that answer.
    pub async fn tunnel(
        proxy: SocketAddr,
        authority: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, RawResponse> {
        let mut conn = Self::open(proxy).await;
        conn.send(&connect_request(authority, headers)).await;
        let head = conn.read_response(true).await;
        if head.status != 200 {
            return Err(conn.read_body(head).await);
        }
        Ok(conn)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Read one response: head, then a Content-Length or chunked body (or none for a
    /// CONNECT 200 / 1xx / 204 / 304 when `head_only`).
    pub async fn read_response(&mut self, head_only: bool) -> RawResponse {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only {
            return resp;
        }
        self.read_body(resp).await
    }

    /// The body of the response whose head is `resp`: Content-Length or chunked framed.
    async fn read_body(&mut self, mut resp: RawResponse) -> RawResponse {
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                self.fill().await;
            }
            resp.body = self.buf.drain(..len).collect();
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            resp.body = self.read_chunked().await;
        }
        resp
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await;
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await;
            }
            out.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return out;
            }
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("read timed out")
            .unwrap();
        assert!(
            n > 0,
            "connection closed early; have {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// True if the peer closed the connection (reads EOF) within a second.
    pub async fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A `CONNECT authority` request with `headers`.
pub fn connect_request(authority: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
