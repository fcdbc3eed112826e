//! A fake of YouTube's resumable upload protocol, independent of the transport: the wiremock
//! responder (buffered bodies, for the integration tests) and the TcpListener server (streamed
//! bodies, for connection resets, kill -9 and the benchmark) both drive this state.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

/// The upload endpoint's path.
pub const UPLOAD_PATH: &str = "/upload/youtube/v3/videos";
/// The Data API's `videos.list` path (`[youtube] api_url` is this without `/videos`).
pub const VIDEOS_PATH: &str = "/youtube/v3/videos";

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    fn error(status: u16, reason: &str) -> Answer {
        let mut a = Answer::new(status);
        a.body = format!(
            r#"{{"error":{{"code":{status},"message":"fake {reason}","errors":[{{"domain":"youtube","reason":"{reason}","message":"fake"}}]}}}}"#
        );
        a.headers
            .push(("Content-Type", "application/json; charset=UTF-8".into()));
        a
    }
}

/// A fault injected into the next request of its kind.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The next session start answers this status and reason.
    Init(u16, &'static str),
    /// The next chunk is read, not kept, and answered with this status and reason.
    Put(u16, &'static str),
    /// The next chunk keeps its first `keep` bytes, then the server answers 503.
    KeepThenFail { keep: u64 },
    /// Every session is forgotten (404 from now on).
    ForgetSessions,
    /// The next chunk is kept, but the answer comes only after this long.
    SlowAnswer(Duration),
}

#[derive(Debug, Clone, Default)]
pub struct Session {
    pub total: u64,
    pub received: u64,
    pub gone: bool,
    pub video_id: Option<String>,
}

/// One request with data: where it started and how many bytes arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    pub session: usize,
    pub start: u64,
    pub len: u64,
}

/// What the transport does next with a request.
#[derive(Debug)]
pub enum Step {
    Answer(Answer),
    /// Read the `len` body bytes of a chunk for `session` starting at `start`, then call
    /// [`State::chunk_received`].
    ReadChunk {
        session: usize,
        start: u64,
        len: u64,
    },
}

#[derive(Debug, Default)]
pub struct State {
    /// `http://127.0.0.1:PORT`, for Location headers.
    pub base: String,
    /// The bearer token accepted; anything else gets 401.
    pub token: String,
    /// Answer incomplete chunks with a real 308 instead of 200 + override header.
    pub plain_308: bool,
    pub sessions: Vec<Session>,
    /// The `video` resources sent at session start.
    pub metadata: Vec<serde_json::Value>,
    /// Headers of session starts (lower-case names).
    pub init_headers: Vec<Vec<(String, String)>>,
    pub puts: Vec<Put>,
    pub status_queries: usize,
    /// Data bytes received that the server already had.
    pub resent: u64,
    /// Data bytes received in total.
    pub bytes: u64,
    pub unauthorized: usize,
    pub faults: VecDeque<Fault>,
    /// What `videos.list` says of every uploaded video: `status.uploadStatus` (default
    /// `processed`) and, with `rejected`/`failed`, the reason.
    pub upload_status: (String, Option<String>),
    /// `videos.list` requests, with the `part` and `id` asked for.
    pub video_lists: Vec<(String, String)>,
}

impl State {
    pub fn new(base: &str, token: &str) -> State {
        State {
            base: base.to_string(),
            token: token.to_string(),
            ..State::default()
        }
    }

    /// A request's head (and a session start's small body).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Step {
        let expected = format!("Bearer {}", self.token);
        if header("authorization").as_deref() != Some(expected.as_str()) {
            self.unauthorized += 1;
            return Step::Answer(Answer::error(401, "authError"));
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path == VIDEOS_PATH && method == "GET" {
            return Step::Answer(self.videos_list(query));
        }
        if path != UPLOAD_PATH {
            return Step::Answer(Answer::new(404));
        }
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        };
        match (method, param("upload_id")) {
            ("POST", None) => Step::Answer(self.init(query, header, body)),
            ("PUT", Some(id)) => {
                let Some(index) = id
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.sessions.len())
                else {
                    return Step::Answer(Answer::new(404));
                };
                if self.sessions[index].gone {
                    return Step::Answer(Answer::new(404));
                }
                let range = header("content-range").unwrap_or_default();
                if let Some(total) = range.strip_prefix("bytes */") {
                    self.status_queries += 1;
                    assert_eq!(total.parse::<u64>().ok(), Some(self.sessions[index].total));
                    return Step::Answer(self.progress(index, header));
                }
                let Some((first, last, total)) = parse_range(&range) else {
                    return Step::Answer(Answer::error(400, "badContentRange"));
                };
                assert_eq!(total, self.sessions[index].total, "total changed");
                let len = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                assert_eq!(
                    len,
                    last - first + 1,
                    "Content-Length and Content-Range disagree"
                );
                Step::ReadChunk {
                    session: index,
                    start: first,
                    len,
                }
            }
            _ => Step::Answer(Answer::new(405)),
        }
    }

    fn init(
        &mut self,
        query: &str,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Answer {
        assert!(query.contains("uploadType=resumable"), "{query}");
        assert!(query.contains("part=snippet%2Cstatus") || query.contains("part=snippet,status"));
        let names = [
            "x-upload-content-length",
            "x-upload-content-type",
            "content-type",
        ];
        self.init_headers.push(
            names
                .iter()
                .filter_map(|n| header(n).map(|v| (n.to_string(), v)))
                .collect(),
        );
        self.metadata
            .push(serde_json::from_slice(body).expect("metadata is JSON"));
        if let Some(Fault::Init(status, reason)) = self.faults.front().cloned() {
            self.faults.pop_front();
            return Answer::error(status, reason);
        }
        let total = header("x-upload-content-length")
            .and_then(|v| v.parse().ok())
            .expect("X-Upload-Content-Length");
        self.sessions.push(Session {
            total,
            ..Session::default()
        });
        let mut a = Answer::new(200);
        a.headers.push((
            "Location",
            format!(
                "{}{UPLOAD_PATH}?uploadType=resumable&upload_id={}",
                self.base,
                self.sessions.len() - 1
            ),
        ));
        a
    }

    /// After a chunk's body: `got` bytes of it arrived (all of them unless the connection
    /// broke, in which case nobody reads the answer).
    pub fn chunk_received(
        &mut self,
        session: usize,
        start: u64,
        got: u64,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Answer {
        self.puts.push(Put {
            session,
            start,
            len: got,
        });
        self.bytes += got;
        let fault = match self.faults.front() {
            Some(
                Fault::Put(..)
                | Fault::KeepThenFail { .. }
                | Fault::ForgetSessions
                | Fault::SlowAnswer(_),
            ) => self.faults.pop_front(),
            _ => None,
        };
        let keep = match &fault {
            Some(Fault::Put(status, reason)) => return Answer::error(*status, reason),
            Some(Fault::KeepThenFail { keep }) => (*keep).min(got),
            _ => got,
        };
        let s = &mut self.sessions[session];
        if start > s.received {
            return Answer::error(400, "gapInUpload");
        }
        self.resent += (s.received - start).min(keep);
        s.received = s.received.max(start + keep);
        if matches!(fault, Some(Fault::KeepThenFail { .. })) {
            return Answer::error(503, "backendError");
        }
        if matches!(fault, Some(Fault::ForgetSessions)) {
            for s in &mut self.sessions {
                s.gone = true;
            }
        }
        let mut answer = self.progress(session, header);
        if let Some(Fault::SlowAnswer(delay)) = fault {
            answer.delay = delay;
        }
        answer
    }

    /// A chunk whose connection broke after `got` bytes: the server keeps whole 256 KiB units.
    pub fn chunk_cut(&mut self, session: usize, start: u64, got: u64) {
        self.puts.push(Put {
            session,
            start,
            len: got,
        });
        self.bytes += got;
        let s = &mut self.sessions[session];
        let kept = got / (256 * 1024) * (256 * 1024);
        if start <= s.received {
            self.resent += (s.received - start).min(kept);
            s.received = s.received.max(start + kept);
        }
    }

    fn progress(&mut self, session: usize, header: &dyn Fn(&str) -> Option<String>) -> Answer {
        let s = &mut self.sessions[session];
        if s.received >= s.total {
            let id = s
                .video_id
                .get_or_insert_with(|| format!("vid{session}"))
                .clone();
            let mut a = Answer::new(200);
            a.body = format!(
                r#"{{"kind":"youtube#video","id":"{id}","status":{{"uploadStatus":"uploaded"}}}}"#
            );
            a.headers.push(("Content-Type", "application/json".into()));
            return a;
        }
        let mut a = if self.plain_308 || header("x-guploader-no-308").as_deref() != Some("yes") {
            Answer::new(308)
        } else {
            let mut a = Answer::new(200);
            a.headers
                .push(("X-Http-Status-Code-Override", "308".into()));
            a
        };
        if s.received > 0 {
            a.headers
                .push(("Range", format!("bytes=0-{}", s.received - 1)));
        }
        a
    }

    /// `videos.list?part=…&id=…`: the video if an upload created it, with `upload_status`.
    fn videos_list(&mut self, query: &str) -> Answer {
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(|v| v.replace("%2C", ","))
                .unwrap_or_default()
        };
        let (part, id) = (param("part"), param("id"));
        self.video_lists.push((part, id.clone()));
        let known = self
            .sessions
            .iter()
            .any(|s| s.video_id.as_deref() == Some(id.as_str()));
        let items = if known {
            let (upload, reason) = &self.upload_status;
            let upload = if upload.is_empty() {
                "processed"
            } else {
                upload
            };
            let mut status =
                serde_json::json!({ "uploadStatus": upload, "privacyStatus": "private" });
            match (upload, reason) {
                ("rejected", Some(r)) => status["rejectionReason"] = r.clone().into(),
                ("failed", Some(r)) => status["failureReason"] = r.clone().into(),
                _ => {}
            }
            let processing = match upload {
                "processed" => "succeeded",
                "uploaded" => "processing",
                _ => "terminated",
            };
            serde_json::json!([{
                "kind": "youtube#video", "id": id, "status": status,
                "processingDetails": { "processingStatus": processing }
            }])
        } else {
            serde_json::json!([])
        };
        let mut a = Answer::new(200);
        a.body =
            serde_json::json!({ "kind": "youtube#videoListResponse", "items": items }).to_string();
        a.headers.push(("Content-Type", "application/json".into()));
        a
    }

    /// Bytes received for data per session, in order.
    pub fn starts(&self) -> Vec<u64> {
        self.puts.iter().map(|p| p.start).collect()
    }
}

fn parse_range(range: &str) -> Option<(u64, u64, u64)> {
    let rest = range.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}
