//! `cut <login> <from> <to> [session]`: the session (the login's latest, or the one given) and
//! the one finished part holding the span are found through the store on the loop (two quick
//! reads); the cut itself (`post::cut`, reading and writing files) runs on the blocking pool
//! and the reply comes from there (`Answer::Later`), so the loop is never held up.

use std::path::Path;

use recbot_commands::Login;

use super::store::PartRow;
use super::CutReport;
use super::{Answer, Core, Refusal, Reply, Said};
use crate::post::cut::{self, Request};

/// A part's state once it is complete (`parts.state`).
const STATE_FINISHED: &str = "finished";

/// Where a span sits: the part and the span in that part's time.
#[derive(Debug)]
struct Target {
    session: i64,
    part: PartRow,
    offset: f64,
    from: f64,
    to: f64,
}

impl Core {
    pub(super) async fn cut(
        &self,
        name: Login,
        from_ms: u64,
        to_ms: u64,
        session: Option<u64>,
    ) -> anyhow::Result<Result<Answer, Refusal>> {
        let session_id = match session {
            Some(id) => {
                let row = self.store.session(id as i64).await?;
                match row.filter(|s| s.name == name.as_str()) {
                    Some(row) => row.id,
                    None => return Ok(Err(Refusal::NoSession { name, session })),
                }
            }
            None => match self.store.sessions_of(name.as_str(), 1).await?.first() {
                Some(row) => row.id,
                None => return Ok(Err(Refusal::NoSession { name, session })),
            },
        };
        let parts = self.store.parts_of(session_id).await?;
        let (from, to) = (from_ms as f64 / 1000.0, to_ms as f64 / 1000.0);
        let target = match locate(session_id, parts, from, to) {
            Ok(t) => t,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let recordings = self.config.storage.recordings_dir();
        Ok(Ok(Answer::Later(Box::pin(async move {
            run(name, target, recordings).await
        }))))
    }
}

/// The finished part holding `from..to` (session time, parts back to back in order).
fn locate(session: i64, mut parts: Vec<PartRow>, from: f64, to: f64) -> Result<Target, Refusal> {
    parts.sort_by_key(|p| p.part_no);
    let in_progress = parts.iter().any(|p| p.state != STATE_FINISHED);
    let mut offset = 0.0;
    let mut part_ends = Vec::new();
    for part in parts.into_iter().filter(|p| p.state == STATE_FINISHED) {
        let end = offset + part.duration_secs;
        if from >= offset && to <= end + 0.001 {
            return Ok(Target {
                session,
                part,
                offset,
                from: from - offset,
                to: to - offset,
            });
        }
        part_ends.push(end);
        offset = end;
    }
    Err(Refusal::SpanNotInOnePart {
        recorded: offset,
        part_ends,
        in_progress,
    })
}

/// The cut on the blocking pool, and its reply.
async fn run(name: Login, target: Target, recordings: std::path::PathBuf) -> Reply {
    let request = Request {
        from: Some(target.from),
        to: Some(target.to),
        ..Default::default()
    };
    let path = target.part.path.clone();
    let done = crate::blocking::run(move || cut::cut_blocking(&path, &request)).await;
    let written = match done {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return Reply::refused(Refusal::CutFailed(format!("{e:#}"))),
        Err(e) => return Reply::refused(Refusal::CutFailed(e.to_string())),
    };
    let relative = |p: &Path| p.strip_prefix(&recordings).unwrap_or(p).to_path_buf();
    let files = std::iter::once(&written.index)
        .chain(written.video.iter())
        .chain(written.chat.iter())
        .map(|p| relative(p))
        .collect();
    Reply::ok(Said::Cut(Box::new(CutReport {
        name,
        session: target.session,
        part: target.part.part_no,
        kept: written.kept,
        part_offset_secs: target.offset,
        duration_secs: written.duration_secs,
        files,
        chat_lines: written.chat_lines,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(no: u32, secs: f64, state: &str) -> PartRow {
        PartRow {
            session_id: 1,
            part_no: no,
            path: format!("/r/p{no}.ts").into(),
            state: state.into(),
            started_at: chrono::Utc::now(),
            ended_at: None,
            bytes: 1,
            duration_secs: secs,
            gaps: 0,
            recovered: false,
        }
    }

    #[test]
    fn the_span_is_found_in_its_part_in_that_parts_time() {
        let parts = vec![part(2, 50.0, "finished"), part(1, 100.0, "finished")];
        let t = locate(1, parts.clone(), 110.0, 120.0).unwrap();
        assert_eq!(
            (t.part.part_no, t.offset, t.from, t.to),
            (2, 100.0, 10.0, 20.0)
        );
        let t = locate(1, parts.clone(), 0.0, 100.0).unwrap();
        assert_eq!(t.part.part_no, 1);
        match locate(1, parts.clone(), 90.0, 110.0).unwrap_err() {
            Refusal::SpanNotInOnePart {
                recorded,
                part_ends,
                in_progress,
            } => {
                assert_eq!((recorded, in_progress), (150.0, false));
                assert_eq!(part_ends, [100.0, 150.0]);
            }
            other => panic!("{other:?}"),
        }
        let mut more = parts;
        more.push(part(3, 0.0, "recording"));
        assert!(matches!(
            locate(1, more, 160.0, 170.0),
            Err(Refusal::SpanNotInOnePart {
                in_progress: true,
                ..
            })
        ));
    }
}
