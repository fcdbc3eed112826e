use std::io::Write;

use super::*;

pub(crate) use super::brotli_stored::brotli_stored;

pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn message(json: &str) -> Vec<u8> {
    encode(OP_MESSAGE, VER_JSON, 0, json.as_bytes())
}

const DANMU: &str = r#"{"cmd":"DANMU_MSG:4:0:2:2:2:0","info":[[0,1,25,16777215,1723979200649,-1312973962,0,"0bc8acd0",0,0,0,"",0,"{}","{}",{"extra":"{}","mode":0,"show_player_type":0,"user":{}},{"activity_identity":"","activity_source":0,"not_show":0},0],"hello",[6088969,"tim1997",0,0,0,10000,1,""],[],[39,0,10512625,42523,2],["",""],0,0,null,{"ts":1723979200,"ct":"AFFF4206"},0,0,null,null,0,1040,[49],null],"dm_v2":""}"#;
const MASKED: &str = r#"{"cmd":"DANMU_MSG","info":[[0,1,25,16777215,1723979201000,0,0,"",0,0,0,"",0],"hi",[0,"提***",0,0,0,10000,1,""],[],[],["",""],0,0,null,{"ts":1723979201,"ct":"X"}]}"#;
const LIVE: &str = r#"{"cmd":"LIVE","live_key":"234304209915761953","voice_background":"","sub_session_key":"234304209915761953sub_time:1651036923","live_platform":"pc","live_model":0,"live_time":1651036923,"roomid":23614753}"#;
const PREPARING: &str = r#"{"cmd":"PREPARING","msg_id":"1","p_is_ack":true,"p_msg_type":1,"roomid":"23058","send_time":1700000000000}"#;

#[test]
fn auth_and_heartbeat_packets_are_as_the_server_expects() {
    let hb = heartbeat_packet();
    assert_eq!(hb.len(), 31, "biliup's HEARTBEAT is 31 bytes");
    assert_eq!(
        &hb[..16],
        &[0, 0, 0, 31, 0, 16, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1]
    );
    let key = Secret::new("danmu-token");
    let auth = auth_packet(&Auth {
        uid: 0,
        room_id: 23058,
        key: Some(&key),
        buvid: Some("B-infoc"),
        protover: 3,
    });
    let p = &packets(&auth).unwrap()[0];
    assert_eq!((p.op, p.version, p.seq), (OP_AUTH, VER_PLAIN, 1));
    let body: Value = serde_json::from_slice(&p.body).unwrap();
    assert_eq!(
        body,
        json!({"uid": 0, "roomid": 23058, "protover": 3, "platform": "web", "type": 2, "key": "danmu-token", "buvid": "B-infoc"})
    );
    let guest = auth_packet(&Auth {
        uid: 0,
        room_id: 1,
        key: None,
        buvid: None,
        protover: 2,
    });
    assert!(!String::from_utf8_lossy(&guest).contains("key"));
}

#[test]
fn replies_are_read_and_the_heartbeat_echo_ignored() {
    let mut frame = encode(OP_HEARTBEAT_REPLY, VER_PLAIN, 1, &1234u32.to_be_bytes());
    frame.extend_from_slice(b"[object Object]");
    assert_eq!(
        decode(&frame).unwrap(),
        [Message::HeartbeatReply { popularity: 1234 }]
    );
    let ok = encode(OP_AUTH_REPLY, VER_PLAIN, 1, br#"{"code":0}"#);
    let bad = encode(OP_AUTH_REPLY, VER_PLAIN, 1, br#"{"code":-101}"#);
    assert_eq!(
        decode(&[ok, bad].concat()).unwrap(),
        [
            Message::AuthReply { code: Some(0) },
            Message::AuthReply { code: Some(-101) }
        ]
    );
}

#[test]
fn zlib_and_brotli_batches_open_into_commands_losslessly() {
    let batch = [
        message(DANMU),
        message(MASKED),
        message(LIVE),
        message(PREPARING),
    ]
    .concat();
    let zlib_frame = encode(OP_MESSAGE, VER_ZLIB, 0, &zlib(&batch));
    let brotli_frame = encode(OP_MESSAGE, VER_BROTLI, 0, &brotli_stored(&batch));
    let plain = message(r#"{"cmd":"WATCHED_CHANGE","data":{"num":5}}"#);
    let frame = [zlib_frame, plain, brotli_frame].concat();
    let messages = decode(&frame).unwrap();
    let cmds: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| match m {
            Message::Command { cmd, raw } => (cmd.as_str(), raw.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    let once = [
        ("DANMU_MSG", DANMU),
        ("DANMU_MSG", MASKED),
        ("LIVE", LIVE),
        ("PREPARING", PREPARING),
    ];
    assert_eq!(cmds[..4], once);
    assert_eq!(cmds[4].0, "WATCHED_CHANGE");
    assert_eq!(cmds[5..], once, "the raw JSON comes out byte for byte");
}

#[test]
fn commands_become_chat_lines_and_live_states() {
    let Danmaku::Chat(line) = command("DANMU_MSG", DANMU) else {
        panic!()
    };
    assert_eq!(line.platform, Platform::Bilibili);
    assert_eq!(line.user_id.as_deref(), Some("6088969"));
    assert_eq!(line.name.as_deref(), Some("tim1997"));
    assert_eq!(line.text.as_deref(), Some("hello"));
    assert_eq!(line.time_ms, Some(1723979200649));
    assert_eq!(line.raw, DANMU);
    let Danmaku::Chat(masked) = command("DANMU_MSG", MASKED) else {
        panic!()
    };
    assert_eq!(
        (masked.user_id.as_deref(), masked.name.as_deref()),
        (Some("0"), Some("提***")),
        "kept as sent"
    );
    assert_eq!(
        command("LIVE", LIVE),
        Danmaku::Live {
            room: Some(23614753)
        }
    );
    assert_eq!(
        command("PREPARING", PREPARING),
        Danmaku::Preparing { room: Some(23058) },
        "string roomid"
    );
    let gift = r#"{"cmd":"SEND_GIFT","data":{"giftName":"辣条","num":3,"uname":"u","uid":7,"coin_type":"gold","total_coin":300,"timestamp":1700000000}}"#;
    let Danmaku::Chat(g) = command("SEND_GIFT", gift) else {
        panic!()
    };
    assert_eq!(
        (g.text.as_deref(), g.amount.clone(), g.time_ms),
        (
            Some("辣条 x3"),
            Some(Amount {
                value: 300,
                unit: "gold"
            }),
            Some(1_700_000_000_000)
        )
    );
    let sc = r#"{"cmd":"SUPER_CHAT_MESSAGE","roomid":1,"data":{"id":1,"uid":8,"message":"加油","price":30,"start_time":1700000001,"user_info":{"uname":"sc"}}}"#;
    let Danmaku::Chat(s) = command("SUPER_CHAT_MESSAGE", sc) else {
        panic!()
    };
    assert_eq!(
        (s.name.as_deref(), s.text.as_deref(), s.amount.clone()),
        (
            Some("sc"),
            Some("加油"),
            Some(Amount {
                value: 30,
                unit: "CNY"
            })
        )
    );
    let guard = r#"{"cmd":"GUARD_BUY","data":{"uid":9,"username":"g","guard_level":3,"num":1,"price":198000,"gift_name":"舰长","start_time":1700000002}}"#;
    let Danmaku::Chat(gb) = command("GUARD_BUY", guard) else {
        panic!()
    };
    assert_eq!(
        (gb.text.as_deref(), gb.amount.map(|a| a.value)),
        (Some("舰长"), Some(198000))
    );
    let change = r#"{"cmd":"ROOM_CHANGE","data":{"title":"新标题","area_id":1,"live_key":"0"}}"#;
    assert_eq!(
        command("ROOM_CHANGE", change),
        Danmaku::RoomChange {
            title: "新标题".into()
        }
    );
    assert_eq!(command("DANMU_MSG", "{broken"), Danmaku::Other);
    let hostile = r#"{"cmd":"DANMU_MSG","info":[[0,1,25,1,-5],{"x":1},["a",[1]]]}"#;
    let Danmaku::Chat(h) = command("DANMU_MSG", hostile) else {
        panic!()
    };
    assert_eq!(
        (h.user_id, h.name, h.text, h.time_ms),
        (None, None, None, None)
    );
}

#[test]
fn malformed_frames_are_named_errors() {
    let good = message(LIVE);
    assert_eq!(decode(&good[..10]), Err(DanmakuError::ShortHeader(10)));
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(DanmakuError::Truncated { .. })
    ));
    let mut short_len = good.clone();
    short_len[..4].copy_from_slice(&8u32.to_be_bytes());
    assert!(matches!(
        decode(&short_len),
        Err(DanmakuError::BadHeader { length: 8, .. })
    ));
    let mut huge_header = good.clone();
    huge_header[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(
        decode(&huge_header),
        Err(DanmakuError::BadHeader { .. })
    ));
    let zero = [0u8; 16];
    assert!(
        matches!(decode(&zero), Err(DanmakuError::BadHeader { .. })),
        "a zero length must not loop"
    );
    let mut version = good.clone();
    version[6..8].copy_from_slice(&9u16.to_be_bytes());
    assert_eq!(decode(&version), Err(DanmakuError::UnknownVersion(9)));
    let bad_zlib = encode(OP_MESSAGE, VER_ZLIB, 0, b"not zlib at all");
    assert_eq!(decode(&bad_zlib), Err(DanmakuError::BadCompression("zlib")));
    let bad_brotli = encode(OP_MESSAGE, VER_BROTLI, 0, &[0xff; 40]);
    assert_eq!(
        decode(&bad_brotli),
        Err(DanmakuError::BadCompression("brotli"))
    );
    // Truncated inside a batch.
    let inner = encode(OP_MESSAGE, VER_ZLIB, 0, &zlib(&good[..20]));
    assert!(matches!(
        decode(&inner),
        Err(DanmakuError::Truncated { .. })
    ));
    assert_eq!(decode(&vec![0; MAX_FRAME + 1]), Err(DanmakuError::TooLarge));
}

#[test]
fn bombs_and_endless_nesting_are_stopped() {
    // Batches inside batches inside batches.
    let mut frame = message(LIVE);
    for level in 0..=MAX_NESTING {
        frame = if level % 2 == 0 {
            encode(OP_MESSAGE, VER_ZLIB, 0, &zlib(&frame))
        } else {
            encode(OP_MESSAGE, VER_BROTLI, 0, &brotli_stored(&frame))
        };
        if level + 1 == MAX_NESTING {
            assert_eq!(
                decode(&frame).unwrap().len(),
                1,
                "{MAX_NESTING} levels are fine"
            );
        }
    }
    assert_eq!(decode(&frame), Err(DanmakuError::TooDeep));
    // 16 MiB of zeros in a few KiB of zlib: refused at the cap, not read whole.
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..16 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = encode(OP_MESSAGE, VER_ZLIB, 0, &e.finish().unwrap());
    assert!(bomb.len() < 256 * 1024);
    assert_eq!(decode(&bomb), Err(DanmakuError::TooMuchData));
    // Two batches each under the cap but together over it.
    let half = encode(OP_MESSAGE, VER_JSON, 0, &vec![b' '; MAX_DECOMPRESSED / 2]);
    let batch = encode(OP_MESSAGE, VER_ZLIB, 0, &zlib(&half));
    assert_eq!(
        decode(&[batch.clone(), batch].concat()),
        Err(DanmakuError::TooMuchData)
    );
    // Endless tiny packets.
    let empty = encode(OP_MESSAGE, VER_JSON, 0, b"");
    assert_eq!(
        decode(&empty.repeat(MAX_PACKETS + 1)),
        Err(DanmakuError::TooManyPackets)
    );
}

/// xorshift64*: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_garbage_and_mutated_frames_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let batch = [message(DANMU), message(LIVE)].concat();
    let seeds = [
        encode(OP_MESSAGE, VER_ZLIB, 0, &zlib(&batch)),
        encode(OP_MESSAGE, VER_BROTLI, 0, &brotli_stored(&batch)),
        batch.clone(),
        heartbeat_packet(),
    ];
    for round in 0..20_000 {
        let frame: Vec<u8> = if round % 2 == 0 {
            let len = rng.below(300);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut f = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(f.len());
                f[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            f
        };
        if let Ok(messages) = decode(&frame) {
            for m in messages {
                if let Message::Command { cmd, raw } = m {
                    let _ = command(&cmd, &raw);
                }
            }
        }
    }
}
