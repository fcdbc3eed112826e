//! UTC days and the day file layout `{chat_dir}/{login}/{YYYY}/{MM}/{DD}.jsonl` (plain) or
//! `….jsonl.zst` (compressed).

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

/// Days since 1970-01-01 (UTC) of a time in ms.
pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(86_400_000) as i32
}

pub fn date_of_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or_default()
}

pub fn day_of_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// `{dir}/{folder}/{YYYY}/{MM}/{DD}.jsonl`.
pub fn day_path(dir: &Path, folder: &str, date: NaiveDate) -> PathBuf {
    dir.join(folder)
        .join(format!("{:04}", date.year()))
        .join(format!("{:02}", date.month()))
        .join(format!("{:02}.jsonl", date.day()))
}

/// `{dir}/{folder}/{YYYY}/{MM}/{DD}.jsonl.zst`: the compressed day file.
pub fn zst_path(dir: &Path, folder: &str, date: NaiveDate) -> PathBuf {
    let mut path = day_path(dir, folder, date).into_os_string();
    path.push(".zst");
    PathBuf::from(path)
}
