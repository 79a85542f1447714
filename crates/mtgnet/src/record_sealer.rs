//! The v2 sealer of a connection, shared by the tasks that send: each
//! message is sealed on its own task's thread, beside the others, and its
//! frame is queued for writing in counter order.
//!
//! v2 records carry counters, so they must reach the socket in counter
//! order. Sealing under one lock and queueing before releasing it would
//! keep that order, but it seals a connection's messages one after another
//! on one core (a 64 KiB reply takes tens of microseconds). Instead a
//! message goes through three steps:
//!
//! ```text
//!   task A  reserve [0, 2) | seal ----------------------| queue, pass the turn to 2
//!   task B    reserve [2, 3) | seal --| wait for turn 2 ..........| queue, pass to 3
//!           (under the lock)  (no lock: several at once)  (under the lock)
//! ```
//!
//! 1. Under the lock, [`Sealer::reserve`] takes the message's counters: a
//!    *turn*, the range `first..end`. Turns are handed out in order and
//!    never overlap.
//! 2. Without the lock, the [`Reservation`] seals the message through the
//!    read-only key, on the sending task's thread, while other threads seal
//!    other messages.
//! 3. Under the lock again, the task waits until every earlier turn has
//!    been queued (`queued == first`), hands its frame to the writer's queue
//!    and passes the turn on (`queued = end`).
//!
//! **Order.** The writer's queue is FIFO, and a frame enters it only when
//! `queued` equals its first counter, after which `queued` becomes its end:
//! frames enter the queue exactly in counter order, each message's records
//! together in one frame, so records reach the socket in counter order and
//! records of different messages never interleave.
//!
//! **No wait is unbounded.** Steps 1 to 3 run in one synchronous call,
//! with no `.await`: a task cannot be suspended or cancelled between
//! reserving a turn and passing it on, so the holder of the earliest turn
//! not yet queued is always running on some thread, sealing (bounded
//! work) or queueing (the `send` callback must not wait). A task waits only
//! for earlier turns, so there is no cycle: the earliest turn always
//! completes, then the next, and each wait lasts at most as long as the
//! seals of the turns before it that are still running, one per other
//! thread at most. If a task panics in between, its [`Turn`]'s `Drop` still
//! waits for its turn and passes it on, so later tasks go ahead; the
//! connection is abandoned (no close record), since the peer would fail at
//! the gap in the counters anyway.
//!
//! **The close record** is sealed only when every counter reserved so far
//! has been queued (`queued == sealer.records_sealed()`), and the sealer
//! refuses every reservation after it; the writer asks for it only after
//! its queue is drained and every sender is gone, so it is written after
//! every message. Should a reservation still be pending then, which the
//! writer's ordering rules out, the connection is abandoned rather than
//! closed out of order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use mtgnet_encryption::SealError;
use mtgnet_encryption::v2::{Reservation, Sealer};

/// A connection's v2 [`Sealer`], shared by every task that sends.
pub(crate) struct RecordSealer {
    state: Mutex<State>,
    /// Wakes the tasks waiting for their turn when `State::queued` moves.
    turn: Condvar,
    /// Set when the connection fails: then no close record is sent.
    abandoned: AtomicBool,
}

struct State {
    sealer: Sealer,
    /// The first counter whose frame is not queued yet: every record
    /// before it has been handed to the writer's queue, in order.
    queued: u64,
    /// How many tasks wait for their turn; nobody is woken when none do.
    waiting: usize,
}

impl RecordSealer {
    pub(crate) fn new(sealer: Sealer) -> RecordSealer {
        let queued = sealer.records_sealed();
        RecordSealer {
            state: Mutex::new(State {
                sealer,
                queued,
                waiting: 0,
            }),
            turn: Condvar::new(),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Seals `message` into one frame holding all of its records, on this
    /// thread and beside other senders, then hands the frame to `send` once
    /// every earlier message's frame has been handed over. `send` runs
    /// under the lock and must not wait.
    ///
    /// # Errors
    ///
    /// [`SealError::Closed`] after the close record; [`SealError::Exhausted`]
    /// when the counters run out. Nothing is sealed or sent then.
    pub(crate) fn send<T>(
        &self,
        message: &[u8],
        send: impl FnOnce(BytesMut) -> T,
    ) -> Result<T, SealError> {
        let (reservation, turn) = self.reserve(message.len())?;
        // Sealed straight into the frame's spare capacity: no zero-filling.
        let mut frame = Vec::with_capacity(reservation.framed_len());
        reservation.seal_framed_append(message, &mut frame);
        // Without a copy: the vector becomes the frame's buffer.
        let frame = BytesMut::from(Bytes::from(frame));
        Ok(turn.queue(frame, send))
    }

    /// Takes the counters of a message of `len` bytes and its turn, both
    /// under the lock: nothing can come between them.
    fn reserve(&self, len: usize) -> Result<(Reservation, Turn<'_>), SealError> {
        let mut state = self.lock();
        let reservation = state.sealer.reserve(len)?;
        let first = reservation.first_counter();
        let turn = Turn {
            records: self,
            first,
            end: first + reservation.record_count(),
            passed: false,
        };
        Ok((reservation, turn))
    }

    /// The close record, framed; `None` after [`RecordSealer::abandon`],
    /// when it was sealed already, or (abandoning the connection) when a
    /// message reserved before it is not queued yet.
    pub(crate) fn close_frame(&self) -> Option<BytesMut> {
        let mut state = self.lock();
        if self.abandoned.load(Ordering::Acquire) {
            return None;
        }
        if state.queued != state.sealer.records_sealed() {
            // The close record would go out before that message's records.
            self.abandon();
            return None;
        }
        let mut frame = BytesMut::zeroed(Sealer::CLOSE_FRAMED_LEN);
        state.sealer.close_framed_into(&mut frame).ok()?;
        Some(frame)
    }

    /// The connection failed: it ends without a close record.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoned only by a panicking `send` callback, which leaves the
        // state as it was (its `Turn` passes the turn on afterwards).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every turn before `first` has been queued. Bounded: see
    /// the module documentation.
    fn wait_for_turn(&self, first: u64) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        debug_assert!(state.queued <= first, "a turn is passed on only once");
        while state.queued != first {
            state.waiting += 1;
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        state
    }

    /// Passes the turn on to the message whose first counter is `end`.
    fn pass_turn(&self, mut state: MutexGuard<'_, State>, end: u64) {
        state.queued = end;
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.turn.notify_all();
        }
    }
}

/// A message's place in the order of the writer's queue: the counters
/// `first..end`. Passed on exactly once, by [`Turn::queue`] or, if the
/// task panics before that, by `Drop`.
struct Turn<'a> {
    records: &'a RecordSealer,
    first: u64,
    end: u64,
    passed: bool,
}

impl Turn<'_> {
    /// Waits for this turn, hands `frame` to `send`, and passes the turn on.
    fn queue<T>(mut self, frame: BytesMut, send: impl FnOnce(BytesMut) -> T) -> T {
        let state = self.records.wait_for_turn(self.first);
        let sent = send(frame);
        self.passed = true;
        self.records.pass_turn(state, self.end);
        sent
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        // A panic between reserving and queueing: the message's records
        // will never be sent, so the peer cannot open anything after them.
        // Later messages must not wait for them forever, and no close
        // record may claim a clean end.
        self.records.abandon();
        let state = self.records.wait_for_turn(self.first);
        self.records.pass_turn(state, self.end);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;

    use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Opened, Opener, Responder};
    use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
    use mtgnet_proto::framing::FrameDecoder;

    use super::*;

    /// A v2 session's client sealer and the server's matching opener.
    fn sealer_and_opener() -> (Sealer, Opener) {
        let server = NoiseIdentity::new(&IdentitySecret::generate());
        let client = NoiseIdentity::new(&IdentitySecret::generate());
        let initiator = Initiator::new(&client, AuthorizedKeys::any());
        let responder =
            Responder::new(&server, AuthorizedKeys::any(), initiator.hello()).expect("hello");
        let (message3, client_session) = initiator.finish(responder.response()).expect("2");
        let server_session = responder.finish(&message3).expect("3");
        let (sealer, _) = client_session.split();
        let (_, opener) = server_session.split();
        (sealer, opener.with_max_message(1 << 20))
    }

    /// Message `i` of thread `t`: its length spans one to three records,
    /// and its bytes name it.
    fn message(t: usize, i: usize) -> Vec<u8> {
        let len = [100, 65_518, 65_519, 140_000, 0][(t + i) % 5];
        let mut m: Vec<u8> = (0..len)
            .map(|k| ((k + 13 * t + 7 * i) % 251) as u8)
            .collect();
        let tag = format!("{t}:{i};");
        if m.len() >= tag.len() {
            m[..tag.len()].copy_from_slice(tag.as_bytes());
        }
        m
    }

    /// Opens `frames` (the queue's contents, in order) record by record:
    /// every record must open under the next counter.
    fn open_in_order(opener: &mut Opener, frames: &[BytesMut]) -> Vec<Vec<u8>> {
        let mut wire = BytesMut::new();
        for frame in frames {
            wire.extend_from_slice(frame);
        }
        let mut decoder = FrameDecoder::new(65_535);
        let mut messages = Vec::new();
        while let Some(mut record) = decoder.decode(&mut wire).expect("frames") {
            match opener.open_in_place(&mut record).expect("counter order") {
                Opened::InPlace(range) => messages.push(record[range].to_vec()),
                Opened::Message(message) => messages.push(message),
                Opened::Partial => {}
                Opened::Closed => messages.push(b"<close>".to_vec()),
            }
        }
        assert!(wire.is_empty(), "whole frames only");
        messages
    }

    #[test]
    fn frames_sealed_on_many_threads_are_queued_in_counter_order() {
        const THREADS: usize = 4;
        const EACH: usize = 25;
        let (sealer, mut opener) = sealer_and_opener();
        let records = Arc::new(RecordSealer::new(sealer));
        let (queue, frames) = mpsc::channel::<BytesMut>();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (records, queue) = (Arc::clone(&records), queue.clone());
                scope.spawn(move || {
                    for i in 0..EACH {
                        records
                            .send(&message(t, i), |frame| queue.send(frame))
                            .expect("not closed")
                            .expect("queue open");
                    }
                });
            }
        });
        let mut queued: Vec<BytesMut> = frames.try_iter().collect();
        queued.push(records.close_frame().expect("a clean close"));
        let opened = open_in_order(&mut opener, &queued);
        // Every message once, whole; each thread's in its own order.
        assert_eq!(opened.len(), THREADS * EACH + 1);
        assert_eq!(opened.last().map(Vec::as_slice), Some(&b"<close>"[..]));
        for t in 0..THREADS {
            let own: Vec<&Vec<u8>> = opened
                .iter()
                .filter(|m| m.starts_with(format!("{t}:").as_bytes()))
                .collect();
            let expected: Vec<Vec<u8>> = (0..EACH)
                .map(|i| message(t, i))
                .filter(|m| m.starts_with(format!("{t}:").as_bytes()))
                .collect();
            assert!(own.iter().copied().eq(expected.iter()), "thread {t}");
        }
        assert!(opener.is_closed());
        // Nothing after the close record.
        assert_eq!(
            records.send(b"late", |_| ()).map(drop),
            Err(SealError::Closed)
        );
    }

    #[test]
    fn a_panic_between_reserving_and_queueing_lets_later_messages_go_and_abandons() {
        let (sealer, _) = sealer_and_opener();
        let records = Arc::new(RecordSealer::new(sealer));
        let (queue, frames) = mpsc::channel::<BytesMut>();
        // The first message's turn is held while the second one seals and
        // waits for it on another thread.
        let (first, first_turn) = records.reserve(3).expect("reserve");
        let (done, finished) = mpsc::channel();
        std::thread::spawn({
            let records = Arc::clone(&records);
            move || {
                let sent = records.send(b"[2]", |frame| queue.send(frame));
                let _ = done.send(sent.map(|queued| queued.is_ok()));
            }
        });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _turn = first_turn;
            drop(first);
            panic!("the sending task fails before queueing");
        }));
        assert!(panicked.is_err());
        // Bounded only so that a regression fails instead of hanging.
        let later = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(later, Ok(Ok(true)), "the later message was queued");
        // It went out (after a gap the peer will refuse), and the
        // connection ends without a close record.
        assert_eq!(frames.try_iter().count(), 1);
        assert!(records.close_frame().is_none());
    }

    #[test]
    fn a_panicking_send_passes_its_turn_on() {
        let (sealer, _) = sealer_and_opener();
        let records = Arc::new(RecordSealer::new(sealer));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            records.send(b"[1]", |_| panic!("the queue fails"))
        }));
        assert!(panicked.is_err());
        let (done, finished) = mpsc::channel();
        std::thread::spawn({
            let records = Arc::clone(&records);
            move || {
                let _ = done.send(records.send(b"[2]", |frame| frame.len()));
            }
        });
        // Bounded only so that a regression fails instead of hanging.
        let later = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(later, Ok(Ok(24)), "the next message was queued");
        assert!(records.close_frame().is_none(), "abandoned");
    }

    #[test]
    fn no_close_record_while_a_reserved_message_is_not_queued() {
        let (sealer, mut opener) = sealer_and_opener();
        let records = RecordSealer::new(sealer);
        let (reservation, turn) = records.reserve(3).expect("reserve");
        assert!(records.close_frame().is_none());
        // The message still goes out, in its turn; the close never does.
        let mut frame = Vec::new();
        reservation.seal_framed_append(b"[1]", &mut frame);
        let frame = turn.queue(BytesMut::from(&frame[..]), |frame| frame);
        assert_eq!(open_in_order(&mut opener, &[frame]), [b"[1]".to_vec()]);
        assert!(records.close_frame().is_none());
    }
}
