//! Bilibili Live.
