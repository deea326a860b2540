//! The server side of a SPDY/3.1 session, as much of SPDY as `kubectl port-forward` uses.
//!
//! `kubectl port-forward` (client-go's `portforward` over `httpstream/spdy`, which is
//! `moby/spdystream`) upgrades its request to the kubelet to `SPDY/3.1` and then opens two
//! streams per forwarded connection: one with the header `streamType: error`, one with
//! `streamType: data`, both naming the `port` and the `requestID` that pairs them. This module
//! turns such a connection into those streams; what to connect them to is the port-forward
//! handler's business.
//!
//! What is served, following spdystream (the only peer Kubernetes has) where the SPDY/3
//! draft leaves room:
//! - every SYN_STREAM of the client is answered with a SYN_REPLY carrying an empty header
//!   block and handed out as a [`Stream`]; its DATA frames feed [`Stream::incoming`] until the
//!   client's FIN or RST_STREAM;
//! - [`Stream::send`], [`Stream::finish`] and [`Stream::reset`] write DATA frames, the FIN and
//!   RST_STREAM (CANCEL); dropping the last handle of a stream still open resets it, as the
//!   `h2` crate does for HTTP/2;
//! - PINGs of the client (odd ids; the server sends none) are echoed; SETTINGS, WINDOW_UPDATE
//!   (spdystream does no flow control), NOOP and unknown control frames are ignored, HEADERS
//!   and SYN_REPLY only decompressed, so that the shared zlib context stays in step;
//! - the client's GOAWAY stops new streams (the receiver of streams ends) while the open ones
//!   go on; the end of the connection ends everything;
//! - a frame of another version, a control frame over [`MAX_CONTROL_FRAME`] bytes, a malformed
//!   header block or stream ids out of order end the session with a GOAWAY (PROTOCOL_ERROR).
//!
//! Header blocks are zlib streams, one per direction for the whole connection, with the
//! SPDY/3 preset dictionary (Go's client compresses with it; we use it too). No server push,
//! no streams opened by the server, no priorities, no flow control: spdystream needs none.
//!
//! Two tasks serve a session: a reader (frames in, replies out) and a writer (the only one
//! writing to the connection, so frames never interleave). Both end when the connection ends
//! or when every handle (the receiver of streams, every [`Stream`] and [`StreamSender`]) is
//! dropped.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, WeakUnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::debug;

/// The SPDY version served.
const VERSION: u16 = 3;

// Control frame types.
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;

/// FLAG_FIN, on DATA, SYN_STREAM and SYN_REPLY frames.
const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on a SYN_STREAM: the recipient may not send on the stream.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

// RST_STREAM status codes.
const REFUSED_STREAM: u32 = 3;
const CANCEL: u32 = 5;

// GOAWAY status codes.
const GOAWAY_PROTOCOL_ERROR: u32 = 1;
const GOAWAY_INTERNAL_ERROR: u32 = 2;

/// Stream ids are 31 bits; the top bit of their word is reserved.
const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// The largest control frame accepted. Kubernetes' are a few dozen bytes; this leaves room
/// for any header block within [`MAX_HEADER_BLOCK`]. DATA frames may use the whole 24-bit
/// length (16 MiB - 1), as SPDY allows.
const MAX_CONTROL_FRAME: usize = 256 * 1024;

/// The largest header block accepted, decompressed.
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// The largest DATA frame sent; bigger buffers are split.
const MAX_DATA_CHUNK: usize = 64 * 1024;

/// How many streams may be open at once; more are refused (REFUSED_STREAM).
const MAX_OPEN_STREAMS: usize = 4096;

/// How much is read from the connection at a time (the buffer grows with what arrives, never
/// with what a frame header claims).
const READ_CHUNK: usize = 64 * 1024;

/// The writer's buffer: small frames are coalesced into one write.
const WRITE_BUFFER: usize = 64 * 1024;

/// The preset dictionary of SPDY/3 header compression (draft-mbelshe-httpbis-spdy-00, "Name/
/// Value Header Block", "Compression"; the same bytes as spdystream's `headerDictionary`):
/// 1423 bytes whose Adler-32 is 0xe3c6a7c2, the id a zlib stream that uses it carries.
const DICTIONARY: &[u8; 1423] = b"\
    \0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\0\0\0\x05trace\
    \0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\0\0\0\x0faccept-language\
    \0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\0\0\0\x0dauthorization\
    \0\0\0\x0dcache-control\0\0\0\x0aconnection\0\0\0\x0ccontent-base\0\0\0\x10content-encoding\
    \0\0\0\x10content-language\0\0\0\x0econtent-length\0\0\0\x10content-location\
    \0\0\0\x0bcontent-md5\0\0\0\x0dcontent-range\0\0\0\x0ccontent-type\0\0\0\x04date\
    \0\0\0\x04etag\0\0\0\x06expect\0\0\0\x07expires\0\0\0\x04from\0\0\0\x04host\
    \0\0\0\x08if-match\0\0\0\x11if-modified-since\0\0\0\x0dif-none-match\0\0\0\x08if-range\
    \0\0\0\x13if-unmodified-since\0\0\0\x0dlast-modified\0\0\0\x08location\0\0\0\x0cmax-forwards\
    \0\0\0\x06pragma\0\0\0\x12proxy-authenticate\0\0\0\x13proxy-authorization\0\0\0\x05range\
    \0\0\0\x07referer\0\0\0\x0bretry-after\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\
    \0\0\0\x11transfer-encoding\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\0\0\0\x03via\
    \0\0\0\x07warning\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\0\0\0\x06status\
    \0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\0\0\0\x06public\
    \0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin\
    100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 \
    Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 \
    Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 \
    Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, \
    Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,\
    application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,\
    sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// Serves a SPDY/3.1 session on `io` (an upgraded HTTP connection, or the byte stream tunneled
/// in a WebSocket) and hands out, in order, every stream the client opens, already answered
/// with a SYN_REPLY.
///
/// The receiver ends when no more streams can come: the connection ended, the client sent a
/// GOAWAY, or the session failed (a protocol error, answered with a GOAWAY). The session's
/// tasks end when the connection ends or when the receiver and every [`Stream`] and
/// [`StreamSender`] are dropped.
pub fn serve<IO>(io: IO) -> UnboundedReceiver<Stream>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (streams, _tasks) = start(io);
    streams
}

/// [`serve`], with the reader's and the writer's tasks (for the tests to see them end).
fn start<IO>(io: IO) -> (UnboundedReceiver<Stream>, [JoinHandle<()>; 2])
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read_half, write_half) = tokio::io::split(io);
    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    let (streams_tx, streams_rx) = mpsc::unbounded_channel();
    // Each task holds a sender it never uses: its drop, when the task ends, tells the other.
    let (reader_alive, reader_gone) = oneshot::channel();
    let (writer_alive, writer_gone) = oneshot::channel();
    let session = Session {
        frames: frames_tx.downgrade(),
        accepting: Some(Accepting {
            streams: streams_tx,
            frames: frames_tx,
        }),
        open: HashMap::new(),
        last_stream_id: 0,
        decoder: HeaderDecoder::new(),
        encoder: HeaderEncoder::new(),
    };
    let reader = tokio::spawn(read_frames(
        FrameReader::new(read_half),
        session,
        writer_gone,
        reader_alive,
    ));
    let writer = tokio::spawn(write_frames(
        write_half,
        frames_rx,
        reader_gone,
        writer_alive,
    ));
    (streams_rx, [reader, writer])
}

/// A stream the client opened (SYN_STREAM), already answered with a SYN_REPLY.
///
/// Dropping the `Stream` and every [`StreamSender`] of a stream that is not closed both ways
/// resets it (RST_STREAM, CANCEL): keep one of them while reading [`Stream::incoming`].
#[derive(Debug)]
pub struct Stream {
    /// The stream's id (odd: the client's).
    pub id: u32,
    /// The stream's headers, names lower-cased (`streamtype` is `error` or `data`, `port` is
    /// `8080`, `requestid` is `0`). A value of several values keeps their NUL separators.
    pub headers: HashMap<String, String>,
    /// The data the client sends on the stream, in order; ends (`None`) at the client's FIN,
    /// its RST_STREAM, or the end of the connection.
    pub incoming: UnboundedReceiver<Bytes>,
    sender: StreamSender,
}

impl Stream {
    /// The value of the header `name`, whatever the case of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Sends `data` to the client, in DATA frames of at most 64 KiB.
    pub fn send(&self, data: Bytes) -> Result<(), StreamClosed> {
        self.sender.send(data)
    }

    /// Half-closes our side: an empty DATA frame with FLAG_FIN. Once only; later calls do
    /// nothing.
    pub fn finish(&self) {
        self.sender.finish();
    }

    /// Resets the stream: RST_STREAM with status CANCEL. Nothing more can be sent on it.
    pub fn reset(&self) {
        self.sender.reset();
    }

    /// A handle that sends on this stream, so that one task can read [`Stream::incoming`]
    /// while another writes.
    pub fn sender(&self) -> StreamSender {
        self.sender.clone()
    }
}

/// Sends on one [`Stream`]; clones send on the same stream.
#[derive(Clone, Debug)]
pub struct StreamSender {
    shared: Arc<StreamShared>,
}

impl StreamSender {
    /// Sends `data` to the client, in DATA frames of at most 64 KiB. Fails once the stream
    /// can carry nothing more from us.
    pub fn send(&self, mut data: Bytes) -> Result<(), StreamClosed> {
        if self.shared.state.load(Ordering::Acquire) & (FINISHED | RESET) != 0 {
            return Err(StreamClosed);
        }
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA_CHUNK));
            let head = data_head(self.shared.id, 0, chunk.len());
            self.shared
                .frames
                .send(Outgoing::Data(head, chunk))
                .map_err(|_| StreamClosed)?;
        }
        Ok(())
    }

    /// Half-closes our side: an empty DATA frame with FLAG_FIN. Once only, and not after a
    /// reset.
    pub fn finish(&self) {
        let before = self.shared.state.fetch_or(FINISHED, Ordering::AcqRel);
        if before & (FINISHED | RESET) == 0 {
            let head = data_head(self.shared.id, FLAG_FIN, 0);
            let _ = self.shared.frames.send(Outgoing::Data(head, Bytes::new()));
        }
    }

    /// Resets the stream: RST_STREAM with status CANCEL, unless it was reset already (by us or
    /// by the client).
    pub fn reset(&self) {
        self.shared.reset(CANCEL);
    }
}

/// The stream can carry nothing more from us: we finished or reset it, the client reset it,
/// or the connection ended.
#[derive(Debug, thiserror::Error)]
#[error("the SPDY stream is closed")]
pub struct StreamClosed;

// The bits of `StreamShared::state`.
/// We sent our FIN (or the stream is unidirectional): we may send nothing more.
const FINISHED: u8 = 1;
/// One side sent a RST_STREAM.
const RESET: u8 = 2;
/// The client sent its FIN.
const PEER_FINISHED: u8 = 4;

/// What the handles of one stream share, and the reader sees (weakly) to mark the client's
/// FIN and RST_STREAM.
#[derive(Debug)]
struct StreamShared {
    id: u32,
    /// The writer's queue.
    frames: UnboundedSender<Outgoing>,
    state: AtomicU8,
}

impl StreamShared {
    fn reset(&self, status: u32) {
        if self.state.fetch_or(RESET, Ordering::AcqRel) & RESET == 0 {
            let _ = self.frames.send(rst_stream(self.id, status));
        }
    }
}

impl Drop for StreamShared {
    fn drop(&mut self) {
        // No handle is left to read or write: tell the client, unless the stream is over.
        let state = *self.state.get_mut();
        if state & FINISHED == 0 || state & PEER_FINISHED == 0 {
            self.reset(CANCEL);
        }
    }
}

/// A frame for the writer.
#[derive(Debug)]
enum Outgoing {
    /// A control frame, whole: written at once, so that a compressed header block reaches the
    /// client in one piece (spdystream's reader wants the whole block in one read).
    Control(Bytes),
    /// A DATA frame: its header and its payload, which is not copied.
    Data([u8; 8], Bytes),
}

/// A frame read from the client.
#[derive(Debug, PartialEq)]
enum Incoming {
    Control {
        kind: u16,
        flags: u8,
        payload: Bytes,
    },
    Data {
        stream_id: u32,
        flags: u8,
        payload: Bytes,
    },
}

/// Why a session ends before the connection does.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("reading the connection: {0}")]
    Io(#[from] io::Error),
    #[error("a frame of SPDY version {0}, not 3")]
    Version(u16),
    #[error("a control frame of {0} bytes, over the {MAX_CONTROL_FRAME} accepted")]
    TooLarge(usize),
    #[error("a DATA frame on stream 0")]
    DataOnStreamZero,
    #[error("a {kind} frame of {len} bytes")]
    Length { kind: &'static str, len: usize },
    #[error("a SYN_STREAM with stream id {id} (the last was {last})")]
    StreamId { id: u32, last: u32 },
    #[error("a header block {0}")]
    Headers(#[from] HeaderError),
    #[error("compressing a header block: {0}")]
    Compress(#[from] flate2::CompressError),
}

impl SessionError {
    /// The GOAWAY status to tell the client, if it can still be told.
    fn go_away_status(&self) -> Option<u32> {
        match self {
            SessionError::Io(_) => None,
            SessionError::Compress(_) => Some(GOAWAY_INTERNAL_ERROR),
            _ => Some(GOAWAY_PROTOCOL_ERROR),
        }
    }
}

/// Why a header block was not read.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    #[error("that does not decompress: {0}")]
    Zlib(#[from] flate2::DecompressError),
    #[error("that does not decompress: the zlib stream stopped inside it")]
    Ended,
    #[error("of more than {MAX_HEADER_BLOCK} bytes")]
    TooLarge,
    #[error("cut short")]
    Truncated,
    #[error("claiming {0} pairs")]
    PairCount(u32),
    #[error("with an empty name")]
    EmptyName,
    #[error("naming {0:?} twice")]
    Duplicate(String),
    #[error("with {0} bytes after its pairs")]
    Trailing(usize),
}

/// The reader's side of the session: the open streams and the header compression contexts.
struct Session {
    /// The writer's queue, held weakly: it closes (and the writer ends) once every handle,
    /// and `accepting`, is gone.
    frames: WeakUnboundedSender<Outgoing>,
    /// While new streams can be handed out: where to, and a sender that keeps the writer.
    accepting: Option<Accepting>,
    /// The streams not yet closed, by id.
    open: HashMap<u32, OpenStream>,
    last_stream_id: u32,
    decoder: HeaderDecoder,
    encoder: HeaderEncoder,
}

struct Accepting {
    streams: UnboundedSender<Stream>,
    frames: UnboundedSender<Outgoing>,
}

/// What the reader keeps of an open stream.
struct OpenStream {
    /// Weak: the handles, not the reader, keep a stream (and the writer) alive.
    shared: Weak<StreamShared>,
    /// Where the client's data goes, until its FIN.
    incoming: Option<UnboundedSender<Bytes>>,
}

impl OpenStream {
    /// Nobody holds the stream any more, nor reads what the client sends on it.
    fn abandoned(&self) -> bool {
        self.shared.strong_count() == 0 && self.incoming.as_ref().is_none_or(|tx| tx.is_closed())
    }
}

impl Session {
    fn on_frame(&mut self, frame: Incoming) -> Result<(), SessionError> {
        match frame {
            Incoming::Data {
                stream_id,
                flags,
                payload,
            } => {
                self.on_data(stream_id, flags, payload);
                Ok(())
            }
            Incoming::Control {
                kind,
                flags,
                payload,
            } => match kind {
                SYN_STREAM => self.on_syn_stream(flags, &payload),
                // Not expected from a client, but their header blocks move the zlib context.
                SYN_REPLY | HEADERS => {
                    if payload.len() < 4 {
                        return Err(SessionError::Length {
                            kind: "SYN_REPLY or HEADERS",
                            len: payload.len(),
                        });
                    }
                    self.decoder.decode(&payload[4..])?;
                    Ok(())
                }
                RST_STREAM => self.on_rst_stream(&payload),
                PING => self.on_ping(payload),
                GOAWAY => {
                    debug!("SPDY client sent GOAWAY: no new streams");
                    self.accepting = None;
                    Ok(())
                }
                // SETTINGS, NOOP, WINDOW_UPDATE, CREDENTIAL and what a later draft may add.
                _ => Ok(()),
            },
        }
    }

    fn on_syn_stream(&mut self, flags: u8, payload: &[u8]) -> Result<(), SessionError> {
        // Stream id, associated-to stream id, priority and slot, then the header block.
        if payload.len() < 10 {
            return Err(SessionError::Length {
                kind: "SYN_STREAM",
                len: payload.len(),
            });
        }
        let id = be_u32(payload) & STREAM_ID_MASK;
        // First the header block, even of a stream refused: the zlib context must follow.
        let headers = self.decoder.decode(&payload[10..])?;
        if id.is_multiple_of(2) || id <= self.last_stream_id {
            return Err(SessionError::StreamId {
                id,
                last: self.last_stream_id,
            });
        }
        self.last_stream_id = id;
        if self.open.len() >= MAX_OPEN_STREAMS {
            self.open.retain(|_, open| !open.abandoned());
        }
        let Some(accepting) = &self.accepting else {
            self.send(rst_stream(id, REFUSED_STREAM));
            return Ok(());
        };
        if self.open.len() >= MAX_OPEN_STREAMS {
            self.send(rst_stream(id, REFUSED_STREAM));
            return Ok(());
        }

        let mut reply = id.to_be_bytes().to_vec();
        reply.extend(self.encoder.encode(&[])?);
        let _ = accepting
            .frames
            .send(Outgoing::Control(control_frame(SYN_REPLY, 0, &reply)));

        let mut state = 0;
        if flags & FLAG_UNIDIRECTIONAL != 0 {
            state |= FINISHED;
        }
        if flags & FLAG_FIN != 0 {
            state |= PEER_FINISHED;
        }
        let shared = Arc::new(StreamShared {
            id,
            frames: accepting.frames.clone(),
            state: AtomicU8::new(state),
        });
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        self.open.insert(
            id,
            OpenStream {
                shared: Arc::downgrade(&shared),
                incoming: (flags & FLAG_FIN == 0).then_some(incoming_tx),
            },
        );
        // Should the receiver be gone already, the stream is dropped here, which resets it.
        let _ = accepting.streams.send(Stream {
            id,
            headers,
            incoming,
            sender: StreamSender { shared },
        });
        Ok(())
    }

    fn on_data(&mut self, id: u32, flags: u8, payload: Bytes) {
        // Data on a stream we do not know (closed, refused) is dropped, as spdystream does.
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        if let Some(incoming) = &open.incoming
            && !payload.is_empty()
            && incoming.send(payload).is_err()
        {
            open.incoming = None;
        }
        if flags & FLAG_FIN != 0 {
            open.incoming = None;
            if let Some(shared) = open.shared.upgrade() {
                shared.state.fetch_or(PEER_FINISHED, Ordering::AcqRel);
            }
        }
        if open.abandoned() {
            self.open.remove(&id);
        }
    }

    fn on_rst_stream(&mut self, payload: &[u8]) -> Result<(), SessionError> {
        if payload.len() != 8 {
            return Err(SessionError::Length {
                kind: "RST_STREAM",
                len: payload.len(),
            });
        }
        let id = be_u32(payload) & STREAM_ID_MASK;
        if let Some(open) = self.open.remove(&id)
            && let Some(shared) = open.shared.upgrade()
        {
            // Marked before `incoming` ends (with `open`), so a handle that sees the end
            // sees the reset too. No RST_STREAM answers a RST_STREAM.
            shared.state.fetch_or(RESET, Ordering::AcqRel);
        }
        Ok(())
    }

    fn on_ping(&mut self, payload: Bytes) -> Result<(), SessionError> {
        if payload.len() != 4 {
            return Err(SessionError::Length {
                kind: "PING",
                len: payload.len(),
            });
        }
        // Odd ids are the client's; an even one would answer a PING of ours, and we send none.
        if be_u32(&payload) % 2 == 1 {
            self.send(Outgoing::Control(control_frame(PING, 0, &payload)));
        }
        Ok(())
    }

    /// Tells the client the session is over, with the last stream it opened that we saw.
    fn go_away(&self, status: u32) {
        let mut payload = [0; 8];
        payload[..4].copy_from_slice(&self.last_stream_id.to_be_bytes());
        payload[4..].copy_from_slice(&status.to_be_bytes());
        self.send(Outgoing::Control(control_frame(GOAWAY, 0, &payload)));
    }

    fn send(&self, frame: Outgoing) {
        if let Some(frames) = self.frames.upgrade() {
            let _ = frames.send(frame);
        }
    }
}

/// The reader's task: frames from the client until the connection ends, the session fails,
/// or the writer ends (every handle dropped, or the connection broke).
async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    mut session: Session,
    mut writer_gone: oneshot::Receiver<()>,
    _reader_alive: oneshot::Sender<()>,
) {
    enum Event {
        WriterGone,
        NoOneTakesStreams,
        Frame(Result<Option<Incoming>, SessionError>),
    }
    loop {
        // `next_frame` is cancel-safe: what it read stays in its buffer.
        let event = tokio::select! {
            _ = &mut writer_gone => Event::WriterGone,
            () = streams_receiver_dropped(&session.accepting) => Event::NoOneTakesStreams,
            frame = reader.next_frame() => Event::Frame(frame),
        };
        let result = match event {
            Event::WriterGone => return,
            // Drops our sender of the writer's queue: the handles alone keep the session now.
            Event::NoOneTakesStreams => {
                session.accepting = None;
                continue;
            }
            Event::Frame(Ok(Some(frame))) => session.on_frame(frame),
            Event::Frame(Ok(None)) => return,
            Event::Frame(Err(error)) => Err(error),
        };
        if let Err(error) = result {
            debug!(%error, "SPDY session ended");
            if let Some(status) = error.go_away_status() {
                session.go_away(status);
            }
            return;
        }
    }
}

/// Completes when the receiver of streams is dropped; never if streams are not handed out.
async fn streams_receiver_dropped(accepting: &Option<Accepting>) {
    match accepting {
        Some(accepting) => accepting.streams.closed().await,
        None => std::future::pending().await,
    }
}

/// The writer's task: the frames queued, in order, until every sender is dropped (then the
/// connection is shut down), the connection fails, or the reader ends (then what is queued
/// is written first: a GOAWAY, the last data).
async fn write_frames<W: AsyncWrite + Unpin>(
    io: W,
    mut frames: UnboundedReceiver<Outgoing>,
    mut reader_gone: oneshot::Receiver<()>,
    _writer_alive: oneshot::Sender<()>,
) {
    let mut io = BufWriter::with_capacity(WRITE_BUFFER, io);
    let mut reader_ended = false;
    loop {
        let frame = if reader_ended {
            frames.try_recv().ok()
        } else {
            tokio::select! {
                frame = frames.recv() => frame,
                _ = &mut reader_gone => {
                    reader_ended = true;
                    continue;
                }
            }
        };
        let Some(frame) = frame else { break };
        let written = match frame {
            Outgoing::Control(frame) => io.write_all(&frame).await,
            Outgoing::Data(head, payload) => match io.write_all(&head).await {
                Ok(()) => io.write_all(&payload).await,
                Err(error) => Err(error),
            },
        };
        // Flushed when nothing else is queued: frames queued together go out together.
        let flushed = match written {
            Ok(()) if frames.is_empty() => io.flush().await,
            other => other,
        };
        if let Err(error) = flushed {
            debug!(%error, "writing the SPDY connection");
            return;
        }
    }
    // `shutdown` flushes first.
    let _ = io.shutdown().await;
}

/// Reads frames off the connection into a buffer that grows with what arrives.
struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::new(),
        }
    }

    /// The next frame, or `None` at the end of the connection. Cancel-safe: bytes read stay
    /// in the buffer until their frame is whole.
    async fn next_frame(&mut self) -> Result<Option<Incoming>, SessionError> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(Some(frame));
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                // Between frames or inside one, the session is over either way.
                return Ok(None);
            }
        }
    }

    /// Takes a whole frame off the buffer, if there is one; a bad header fails at once.
    fn parse(&mut self) -> Result<Option<Incoming>, SessionError> {
        let Some(head) = self.buf.first_chunk::<8>() else {
            return Ok(None);
        };
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let control = word & 0x8000_0000 != 0;
        if control {
            let version = (word >> 16) as u16 & 0x7fff;
            if version != VERSION {
                return Err(SessionError::Version(version));
            }
            if len > MAX_CONTROL_FRAME {
                return Err(SessionError::TooLarge(len));
            }
        } else if word & STREAM_ID_MASK == 0 {
            return Err(SessionError::DataOnStreamZero);
        }
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        self.buf.advance(8);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(if control {
            Incoming::Control {
                kind: word as u16,
                flags,
                payload,
            }
        } else {
            Incoming::Data {
                stream_id: word & STREAM_ID_MASK,
                flags,
                payload,
            }
        }))
    }
}

/// Reads the client's header blocks: one zlib stream for the whole connection, each block
/// ending with a sync flush.
struct HeaderDecoder {
    zlib: Decompress,
}

impl HeaderDecoder {
    fn new() -> Self {
        HeaderDecoder {
            zlib: Decompress::new(true),
        }
    }

    /// The name/value pairs of one block: a 32-bit count, then for each pair a 32-bit length
    /// and the name, a 32-bit length and the value. Names are lower-cased.
    fn decode(&mut self, block: &[u8]) -> Result<HashMap<String, String>, HeaderError> {
        let raw = self.inflate(block)?;
        let mut rest = raw.as_slice();
        let count = take_u32(&mut rest)?;
        // Every pair takes at least its two lengths: a larger count is a lie.
        if count as usize > rest.len() / 8 {
            return Err(HeaderError::PairCount(count));
        }
        let mut headers = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let name = take_string(&mut rest)?;
            let value = take_string(&mut rest)?;
            if name.is_empty() {
                return Err(HeaderError::EmptyName);
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(value).into_owned();
            if headers.contains_key(&name) {
                return Err(HeaderError::Duplicate(name));
            }
            headers.insert(name, value);
        }
        if !rest.is_empty() {
            return Err(HeaderError::Trailing(rest.len()));
        }
        Ok(headers)
    }

    /// Decompresses one block, at most [`MAX_HEADER_BLOCK`] bytes of it.
    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out = vec![0; 1024];
        let (mut read, mut written) = (0, 0);
        let mut dictionary_given = false;
        loop {
            let (in_before, out_before) = (self.zlib.total_in(), self.zlib.total_out());
            let result =
                self.zlib
                    .decompress(&block[read..], &mut out[written..], FlushDecompress::Sync);
            read += (self.zlib.total_in() - in_before) as usize;
            written += (self.zlib.total_out() - out_before) as usize;
            match result {
                Ok(_) => {}
                // The first block of Go's client: its zlib header names the dictionary.
                Err(error) if error.needs_dictionary().is_some() && !dictionary_given => {
                    self.zlib.set_dictionary(DICTIONARY)?;
                    dictionary_given = true;
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
            if written < out.len() {
                // Room left: zlib gave all it had for the input it took.
                if read < block.len() {
                    // It stopped taking input: the zlib stream ended inside the block.
                    return Err(HeaderError::Ended);
                }
                out.truncate(written);
                return Ok(out);
            }
            if out.len() >= MAX_HEADER_BLOCK {
                return Err(HeaderError::TooLarge);
            }
            out.resize((out.len() * 2).min(MAX_HEADER_BLOCK), 0);
        }
    }
}

/// Writes our header blocks: one zlib stream for the whole connection, with the dictionary.
struct HeaderEncoder {
    zlib: Compress,
}

impl HeaderEncoder {
    fn new() -> Self {
        let mut zlib = Compress::new(Compression::default(), true);
        // Set before anything is compressed, so the zlib header names it (as Go's does).
        zlib.set_dictionary(DICTIONARY)
            .expect("a dictionary can be set on a new compressor");
        HeaderEncoder { zlib }
    }

    /// One block of `pairs`, ending with a sync flush so the client can read it whole.
    fn encode(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<u8>, flate2::CompressError> {
        let mut raw = Vec::new();
        raw.put_u32(pairs.len() as u32);
        for (name, value) in pairs {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        self.compress(&raw)
    }

    /// `raw`, compressed in the connection's stream and flushed.
    fn compress(&mut self, raw: &[u8]) -> Result<Vec<u8>, flate2::CompressError> {
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut read = 0;
        loop {
            let before = self.zlib.total_in();
            self.zlib
                .compress_vec(&raw[read..], &mut out, FlushCompress::Sync)?;
            read += (self.zlib.total_in() - before) as usize;
            // Room left in `out`: the flush is complete.
            if read == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, HeaderError> {
    let (word, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HeaderError::Truncated)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*word))
}

fn take_string<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], HeaderError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(HeaderError::Truncated);
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    Ok(bytes)
}

/// The first four bytes of `bytes` (at least four), big-endian.
fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A control frame: C bit and version, type, flags, 24-bit length, payload.
fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(8 + payload.len());
    frame.put_u16(0x8000 | VERSION);
    frame.put_u16(kind);
    frame.put_u32(u32::from(flags) << 24 | payload.len() as u32);
    frame.put_slice(payload);
    frame.freeze()
}

/// A DATA frame's header: stream id, flags, 24-bit length (`len` at most 2^24 - 1).
fn data_head(stream_id: u32, flags: u8, len: usize) -> [u8; 8] {
    let mut head = [0; 8];
    head[..4].copy_from_slice(&(stream_id & STREAM_ID_MASK).to_be_bytes());
    head[4..].copy_from_slice(&(u32::from(flags) << 24 | len as u32).to_be_bytes());
    head
}

fn rst_stream(stream_id: u32, status: u32) -> Outgoing {
    let mut payload = [0; 8];
    payload[..4].copy_from_slice(&stream_id.to_be_bytes());
    payload[4..].copy_from_slice(&status.to_be_bytes());
    Outgoing::Control(control_frame(RST_STREAM, 0, &payload))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
    use tokio::time::timeout;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    /// The header blocks of a port-forward's two streams as Go's client sends them, made by
    /// another zlib (C zlib through Python's `zlib.compressobj(9, zdict=<the SPDY/3
    /// dictionary>)`, Go's level) in one stream: `streamtype: error`, then `streamtype: data`,
    /// both with `port: 8080` and `requestid: 0`. The second is 14 bytes: it leans on the first.
    const ERROR_STREAM_BLOCK: [u8; 51] = [
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0x25, 0x3a, 0x70, 0x3a, 0x2b, 0x29, 0x4a, 0x4d,
        0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x86, 0x14, 0xcb, 0x45, 0xe0, 0x1c, 0x60,
        0x61, 0x60, 0x61, 0x00, 0xa4, 0x39, 0x8b, 0x20, 0xd1, 0x98, 0x09, 0x4a, 0xde, 0x8c, 0x06,
        0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    const DATA_STREAM_BLOCK: [u8; 14] = [
        0xc2, 0xaa, 0x19, 0x54, 0x0e, 0x25, 0x12, 0xd6, 0x0b, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];

    /// The client's side, as spdystream's: its frames, its own zlib contexts (compressing
    /// with the dictionary, as Go's does).
    struct Client {
        frames: FrameReader<ReadHalf<DuplexStream>>,
        io: WriteHalf<DuplexStream>,
        encoder: HeaderEncoder,
        decoder: HeaderDecoder,
    }

    fn connect() -> (Client, UnboundedReceiver<Stream>, [JoinHandle<()>; 2]) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (streams, tasks) = start(server);
        let (read_half, write_half) = tokio::io::split(client);
        let client = Client {
            frames: FrameReader::new(read_half),
            io: write_half,
            encoder: HeaderEncoder::new(),
            decoder: HeaderDecoder::new(),
        };
        (client, streams, tasks)
    }

    impl Client {
        async fn write(&mut self, bytes: &[u8]) {
            self.io.write_all(bytes).await.expect("the server reads");
        }

        async fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) {
            self.write(&control_frame(kind, flags, payload)).await;
        }

        async fn syn_stream(&mut self, id: u32, flags: u8, headers: &[(&str, &str)]) {
            let block = self.encoder.encode(headers).expect("compresses");
            self.syn_stream_block(id, flags, &block).await;
        }

        async fn syn_stream_block(&mut self, id: u32, flags: u8, block: &[u8]) {
            self.write(&syn_stream_frame(id, flags, block)).await;
        }

        async fn data(&mut self, id: u32, flags: u8, data: &[u8]) {
            self.write(&data_head(id, flags, data.len())).await;
            self.write(data).await;
        }

        async fn ping(&mut self, id: u32) {
            self.control(PING, 0, &id.to_be_bytes()).await;
        }

        /// The next frame from the server; `None` once it closed the connection.
        async fn frame(&mut self) -> Option<Incoming> {
            timeout(WAIT, self.frames.next_frame())
                .await
                .expect("a frame in time")
                .expect("a valid frame")
        }

        /// Reads the SYN_REPLY for `id`; its header block must be empty.
        async fn expect_reply(&mut self, id: u32) {
            let frame = self.frame().await;
            let Some(Incoming::Control {
                kind: SYN_REPLY,
                flags: 0,
                payload,
            }) = frame
            else {
                panic!("expected a SYN_REPLY, got {frame:?}");
            };
            assert_eq!(be_u32(&payload), id);
            let headers = self.decoder.decode(&payload[4..]).expect("our block reads");
            assert!(headers.is_empty());
        }

        /// The next frame is the RST_STREAM of `id` with `status`.
        async fn expect_rst(&mut self, id: u32, status: u32) {
            assert_eq!(self.frame().await, Some(rst_frame(id, status)));
        }

        /// Sends a PING and reads its echo: nothing else was written before it.
        async fn expect_nothing_more(&mut self) {
            self.ping(99).await;
            assert_eq!(self.frame().await, Some(ping_frame(99)));
        }
    }

    fn syn_stream_frame(id: u32, flags: u8, block: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.put_u32(id);
        payload.put_u32(0); // associated-to
        payload.put_u16(0); // priority, slot
        payload.put_slice(block);
        control_frame(SYN_STREAM, flags, &payload).to_vec()
    }

    fn rst_frame(id: u32, status: u32) -> Incoming {
        let mut payload = BytesMut::new();
        payload.put_u32(id);
        payload.put_u32(status);
        Incoming::Control {
            kind: RST_STREAM,
            flags: 0,
            payload: payload.freeze(),
        }
    }

    fn ping_frame(id: u32) -> Incoming {
        Incoming::Control {
            kind: PING,
            flags: 0,
            payload: Bytes::copy_from_slice(&id.to_be_bytes()),
        }
    }

    fn data_frame(id: u32, flags: u8, data: &[u8]) -> Incoming {
        Incoming::Data {
            stream_id: id,
            flags,
            payload: Bytes::copy_from_slice(data),
        }
    }

    async fn next_stream(streams: &mut UnboundedReceiver<Stream>) -> Stream {
        timeout(WAIT, streams.recv())
            .await
            .expect("a stream in time")
            .expect("a stream")
    }

    async fn next_data(stream: &mut Stream) -> Option<Bytes> {
        timeout(WAIT, stream.incoming.recv())
            .await
            .expect("data or its end in time")
    }

    /// Both tasks end, without panicking.
    async fn ended(tasks: [JoinHandle<()>; 2]) {
        for task in tasks {
            timeout(WAIT, task)
                .await
                .expect("the task ends")
                .expect("the task did not panic");
        }
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        let mut zlib = Compress::new(Compression::default(), true);
        let adler = zlib.set_dictionary(DICTIONARY).expect("sets");
        assert_eq!(adler, 0xe3c6_a7c2);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(DICTIONARY.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn header_blocks_of_another_zlib_decode_in_one_context() {
        let mut decoder = HeaderDecoder::new();
        let error = decoder.decode(&ERROR_STREAM_BLOCK).expect("first block");
        let data = decoder.decode(&DATA_STREAM_BLOCK).expect("second block");
        let expected = |stream_type: &str| {
            HashMap::from([
                (String::from("streamtype"), String::from(stream_type)),
                (String::from("port"), String::from("8080")),
                (String::from("requestid"), String::from("0")),
            ])
        };
        assert_eq!(error, expected("error"));
        assert_eq!(data, expected("data"));
        // The second block means nothing without the first.
        assert!(HeaderDecoder::new().decode(&DATA_STREAM_BLOCK).is_err());
    }

    #[test]
    fn header_blocks_are_bounded_and_checked() {
        let mut encoder = HeaderEncoder::new();
        let mut decoder = HeaderDecoder::new();
        let big = "x".repeat(MAX_HEADER_BLOCK);
        let block = encoder.encode(&[("big", &big)]).expect("compresses");
        assert!(matches!(decoder.decode(&block), Err(HeaderError::TooLarge)));

        // Each below decompresses whole, so one pair of contexts serves them all.
        let mut encoder = HeaderEncoder::new();
        let mut decoder = HeaderDecoder::new();
        let mut reject = |raw: &[u8]| {
            let block = encoder.compress(raw).expect("compresses");
            decoder.decode(&block).expect_err("rejected")
        };
        assert!(matches!(
            reject(&[0xff, 0xff, 0xff, 0xff]),
            HeaderError::PairCount(u32::MAX)
        ));
        assert!(matches!(reject(&[0, 0]), HeaderError::Truncated));
        // One pair whose name claims 100 bytes.
        let lying = [0, 0, 0, 1, 0, 0, 0, 100, b'a', b'b', 0, 0, 0, 0];
        assert!(matches!(reject(&lying), HeaderError::Truncated));
        let empty_name = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, b'v'];
        assert!(matches!(reject(&empty_name), HeaderError::EmptyName));
        let twice = [
            0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, b'A', 0, 0, 0, 0,
        ];
        assert!(matches!(reject(&twice), HeaderError::Duplicate(name) if name == "a"));
        assert!(matches!(reject(&[0, 0, 0, 0, 7]), HeaderError::Trailing(1)));

        assert!(matches!(
            HeaderDecoder::new().decode(b"not zlib at all"),
            Err(HeaderError::Zlib(_))
        ));
    }

    #[tokio::test]
    async fn a_syn_stream_is_answered_and_handed_out_with_its_headers() {
        let (mut client, mut streams, _tasks) = connect();
        let headers = [("streamType", "data"), ("port", "8080"), ("requestID", "0")];
        client.syn_stream(1, 0, &headers).await;

        let stream = next_stream(&mut streams).await;
        assert_eq!(stream.id, 1);
        assert_eq!(stream.headers.len(), 3);
        assert_eq!(stream.headers["streamtype"], "data");
        assert_eq!(stream.header("StreamType"), Some("data"));
        assert_eq!(stream.header("port"), Some("8080"));
        assert_eq!(stream.header("requestid"), Some("0"));
        assert_eq!(stream.header("missing"), None);
        client.expect_reply(1).await;

        // The second stream's block is compressed against the first's.
        client
            .syn_stream(
                3,
                0,
                &[
                    ("streamType", "error"),
                    ("port", "8080"),
                    ("requestID", "0"),
                ],
            )
            .await;
        let second = next_stream(&mut streams).await;
        assert_eq!((second.id, second.header("streamtype")), (3, Some("error")));
        client.expect_reply(3).await;
    }

    #[tokio::test]
    async fn port_forward_streams_of_another_zlib_are_served() {
        let (mut client, mut streams, _tasks) = connect();
        client.syn_stream_block(1, 0, &ERROR_STREAM_BLOCK).await;
        client.syn_stream_block(3, 0, &DATA_STREAM_BLOCK).await;
        let error = next_stream(&mut streams).await;
        let data = next_stream(&mut streams).await;
        assert_eq!((error.id, error.header("streamtype")), (1, Some("error")));
        assert_eq!((data.id, data.header("streamtype")), (3, Some("data")));
        assert_eq!(data.header("port"), Some("8080"));
        client.expect_reply(1).await;
        client.expect_reply(3).await;
    }

    #[tokio::test]
    async fn client_data_reaches_incoming_until_its_fin() {
        let (mut client, mut streams, _tasks) = connect();
        client.syn_stream(1, 0, &[("streamtype", "data")]).await;
        let mut stream = next_stream(&mut streams).await;
        client.data(1, 0, b"hello ").await;
        // Bigger than a read and than what the writer sends in one frame: it arrives whole.
        let big = vec![7; 200_000];
        client.data(1, 0, &big).await;
        client.data(1, FLAG_FIN, b"world").await;
        assert_eq!(
            next_data(&mut stream).await.as_deref(),
            Some(&b"hello "[..])
        );
        assert_eq!(next_data(&mut stream).await.as_deref(), Some(&big[..]));
        assert_eq!(next_data(&mut stream).await.as_deref(), Some(&b"world"[..]));
        assert_eq!(next_data(&mut stream).await, None);

        // A SYN_STREAM with FIN: the client sends nothing on it.
        client
            .syn_stream(3, FLAG_FIN, &[("streamtype", "error")])
            .await;
        let mut quiet = next_stream(&mut streams).await;
        assert_eq!(next_data(&mut quiet).await, None);
        // Our side stays open.
        client.expect_reply(1).await;
        client.expect_reply(3).await;
        quiet.send(Bytes::from_static(b"ok")).expect("open");
        assert_eq!(client.frame().await, Some(data_frame(3, 0, b"ok")));
    }

    #[tokio::test]
    async fn send_splits_into_data_frames_and_finish_sends_a_fin() {
        let (mut client, mut streams, _tasks) = connect();
        client.syn_stream(1, 0, &[("streamtype", "data")]).await;
        let stream = next_stream(&mut streams).await;
        client.expect_reply(1).await;

        let sent: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
        stream
            .sender()
            .send(Bytes::from(sent.clone()))
            .expect("open");
        let mut received = Vec::new();
        while received.len() < sent.len() {
            let Some(Incoming::Data {
                stream_id: 1,
                flags: 0,
                payload,
            }) = client.frame().await
            else {
                panic!("expected data on stream 1");
            };
            assert!(!payload.is_empty() && payload.len() <= MAX_DATA_CHUNK);
            received.extend_from_slice(&payload);
        }
        assert_eq!(received, sent);

        stream.finish();
        assert_eq!(client.frame().await, Some(data_frame(1, FLAG_FIN, b"")));
        stream.finish();
        assert!(stream.send(Bytes::from_static(b"late")).is_err());
        client.expect_nothing_more().await;
    }

    #[tokio::test]
    async fn resets_go_both_ways() {
        let (mut client, mut streams, _tasks) = connect();
        for id in [1, 3, 5] {
            client.syn_stream(id, 0, &[("streamtype", "data")]).await;
            client.expect_reply(id).await;
        }
        let ours = next_stream(&mut streams).await;
        let mut theirs = next_stream(&mut streams).await;
        let dropped = next_stream(&mut streams).await;

        ours.reset();
        client.expect_rst(1, CANCEL).await;
        ours.reset();
        ours.finish();
        assert!(ours.send(Bytes::from_static(b"x")).is_err());

        client
            .control(RST_STREAM, 0, &[0, 0, 0, 3, 0, 0, 0, 5])
            .await;
        assert_eq!(next_data(&mut theirs).await, None);
        assert!(theirs.send(Bytes::from_static(b"x")).is_err());
        drop(theirs); // no RST_STREAM answers theirs

        // Dropping the last handle of an open stream resets it.
        let sender = dropped.sender();
        drop(dropped);
        sender
            .send(Bytes::from_static(b"bye"))
            .expect("a sender keeps it");
        assert_eq!(client.frame().await, Some(data_frame(5, 0, b"bye")));
        drop(sender);
        client.expect_rst(5, CANCEL).await;
        client.expect_nothing_more().await;
    }

    #[tokio::test]
    async fn pings_of_the_client_are_echoed_and_settings_ignored() {
        let (mut client, _streams, _tasks) = connect();
        client
            .control(4, 0, &[0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 100])
            .await; // SETTINGS
        client.control(9, 0, &[0, 0, 0, 1, 0, 1, 0, 0]).await; // WINDOW_UPDATE
        client.control(5, 0, &[]).await; // NOOP
        client.ping(2).await; // even: the answer to a PING we never sent
        client.ping(1).await;
        assert_eq!(client.frame().await, Some(ping_frame(1)));
    }

    /// Frames that end the session: each gets a GOAWAY (PROTOCOL_ERROR) naming the last
    /// stream, then the connection closes, the streams end and both tasks end.
    #[tokio::test]
    async fn protocol_errors_end_the_session_with_a_goaway() {
        type Frame = fn(&mut HeaderEncoder) -> Vec<u8>;
        let cases: [(&str, Frame); 7] = [
            ("version 2", |_| {
                let mut frame = control_frame(PING, 0, &[0, 0, 0, 1]).to_vec();
                frame[1] = 2;
                frame
            }),
            ("a control frame too large", |_| {
                let mut frame = control_frame(SYN_STREAM, 0, &[]).to_vec();
                frame[5..8].copy_from_slice(&[0xff, 0xff, 0xff]); // 16 MiB - 1, never sent
                frame
            }),
            ("a malformed header block", |_| {
                syn_stream_frame(5, 0, b"not a zlib stream")
            }),
            ("data on stream 0", |_| data_head(0, 0, 0).to_vec()),
            ("a stream id going back", |encoder| {
                let block = encoder
                    .encode(&[("streamtype", "data")])
                    .expect("compresses");
                syn_stream_frame(1, 0, &block)
            }),
            ("an even stream id", |encoder| {
                let block = encoder
                    .encode(&[("streamtype", "data")])
                    .expect("compresses");
                syn_stream_frame(6, 0, &block)
            }),
            ("a short RST_STREAM", |_| {
                control_frame(RST_STREAM, 0, &[0, 0, 0, 1]).to_vec()
            }),
        ];
        for (case, frame) in cases {
            let (mut client, mut streams, tasks) = connect();
            client.syn_stream(3, 0, &[("streamtype", "data")]).await;
            let mut stream = next_stream(&mut streams).await;
            client.expect_reply(3).await;

            let bytes = frame(&mut client.encoder);
            client.write(&bytes).await;
            let mut go_away = BytesMut::new();
            go_away.put_u32(3);
            go_away.put_u32(GOAWAY_PROTOCOL_ERROR);
            let expected = Incoming::Control {
                kind: GOAWAY,
                flags: 0,
                payload: go_away.freeze(),
            };
            assert_eq!(client.frame().await, Some(expected), "{case}");
            assert_eq!(client.frame().await, None, "{case}: closed");
            assert_eq!(next_data(&mut stream).await, None, "{case}");
            assert!(streams.recv().await.is_none(), "{case}");
            ended(tasks).await;
            assert!(stream.send(Bytes::from_static(b"x")).is_err(), "{case}");
        }
    }

    #[tokio::test]
    async fn a_goaway_of_the_client_stops_new_streams_only() {
        let (mut client, mut streams, _tasks) = connect();
        client.syn_stream(1, 0, &[("streamtype", "data")]).await;
        let mut stream = next_stream(&mut streams).await;
        client.control(GOAWAY, 0, &[0, 0, 0, 0, 0, 0, 0, 0]).await;
        assert!(
            timeout(WAIT, streams.recv())
                .await
                .expect("in time")
                .is_none()
        );
        client.data(1, 0, b"still").await;
        assert_eq!(next_data(&mut stream).await.as_deref(), Some(&b"still"[..]));
    }

    #[tokio::test]
    async fn the_session_lives_while_a_handle_does() {
        let (mut client, mut streams, tasks) = connect();
        client.syn_stream(1, 0, &[("streamtype", "data")]).await;
        let stream = next_stream(&mut streams).await;
        client.expect_reply(1).await;
        drop(streams);

        // New streams are turned away (refused, or reset if one was handed to the receiver
        // as it went); the open one still works.
        client.syn_stream(3, 0, &[("streamtype", "data")]).await;
        loop {
            match client.frame().await {
                Some(Incoming::Control {
                    kind: SYN_REPLY, ..
                }) => continue,
                Some(Incoming::Control {
                    kind: RST_STREAM,
                    payload,
                    ..
                }) if be_u32(&payload) == 3 => break,
                other => panic!("expected stream 3 turned away, got {other:?}"),
            }
        }
        stream.send(Bytes::from_static(b"here")).expect("open");
        assert_eq!(client.frame().await, Some(data_frame(1, 0, b"here")));
        assert!(tasks.iter().all(|task| !task.is_finished()));

        drop(stream);
        client.expect_rst(1, CANCEL).await;
        ended(tasks).await;
        assert_eq!(client.frame().await, None);
    }

    #[tokio::test]
    async fn the_end_of_the_connection_ends_streams_and_tasks() {
        let (mut client, mut streams, tasks) = connect();
        client.syn_stream(1, 0, &[("streamtype", "data")]).await;
        let mut stream = next_stream(&mut streams).await;
        drop(client);
        assert_eq!(next_data(&mut stream).await, None);
        assert!(streams.recv().await.is_none());
        ended(tasks).await;
        assert!(stream.send(Bytes::from_static(b"x")).is_err());
    }
}
