//! Fuzzing in the tree, on the stable toolchain: property tests of the hello, frame and message
//! decoders. Arbitrary bytes never panic them nor make them allocate more than a small multiple
//! of their input (this binary counts every allocation); every message round-trips; a frame
//! split at any point reads the same. See `fuzz/` for the cargo-fuzz target of the same.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use primed::area::Shape;
use primed::job::Verdict;
use primed::protocol::{
    self, Accepted, JobInfo, NodeKind, Report, Request, Response, TreeNode, MAX_FRAME_BYTES,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Counts the largest allocation made on this thread while `armed`.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the thread-locals are const-initialised, so reading
// them never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation `f` makes.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    let result = f();
    ARMED.with(|a| a.set(false));
    (result, LARGEST.with(Cell::get))
}

/// What decoding `len` bytes may allocate at once: the codec's limit (16 times the input), or
/// serde's cautious pre-allocation of a sequence (1 MiB), whichever is larger.
fn allowance(len: usize) -> usize {
    (16 * len).max(1 << 20)
}

/// Bytes that look like frames a hostile client would send: random, or a real request with a
/// huge varint length spliced in.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let huge = (any::<u64>(), any::<usize>()).prop_map(|(len, at)| (len | 1 << 40, at));
    prop_oneof![
        vec(any::<u8>(), 0..256),
        (request(), huge).prop_map(|(request, (len, at))| {
            let mut bytes =
                protocol::encode_frame(&request, MAX_FRAME_BYTES).expect("encode")[4..].to_vec();
            let at = at % (bytes.len() + 1);
            let mut varint = vec![0xFD];
            varint.extend_from_slice(&len.to_le_bytes());
            bytes.splice(at..at, varint);
            bytes
        }),
    ]
}

fn text() -> impl Strategy<Value = String> {
    ".{0,24}"
}

fn finite() -> impl Strategy<Value = f64> {
    -1e9f64..1e9
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (finite(), finite()).prop_map(|(width, height)| Shape::Rectangle { width, height }),
        finite().prop_map(|side| Shape::Square { side }),
        finite().prop_map(|radius| Shape::Circle { radius }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (vec(text(), 0..8), any::<bool>())
            .prop_map(|(numbers, wait)| Request::Submit { numbers, wait }),
        (vec(any::<u64>(), 0..8), any::<bool>())
            .prop_map(|(ids, wait)| Request::Results { ids, wait }),
        any::<u32>().prop_map(|digits| Request::MakePrime { digits }),
        any::<u64>().prop_map(|id| Request::Cancel { id }),
        Just(Request::Status),
        Just(Request::Jobs),
        Just(Request::Alarms),
        Just(Request::Tree),
        Just(Request::Reload),
        shape().prop_map(|shape| Request::Area { shape }),
        text().prop_map(|actor| Request::Kill { actor }),
        (any::<u64>(), any::<bool>())
            .prop_map(|(since_ms, follow)| Request::Events { since_ms, follow }),
    ]
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Prime),
        Just(Verdict::Composite),
        Just(Verdict::Cancelled),
        text().prop_map(|reason| Verdict::Quarantined { reason }),
        text().prop_map(|prime| Verdict::Made { prime }),
    ]
}

fn report() -> impl Strategy<Value = Report> {
    (
        any::<u64>(),
        text(),
        any::<Option<u32>>(),
        verdict(),
        any::<u32>(),
    )
        .prop_map(|(id, n, digits, verdict, attempts)| Report {
            id,
            n,
            digits,
            verdict,
            attempts,
        })
}

fn accepted() -> impl Strategy<Value = Accepted> {
    prop_oneof![
        (any::<u64>(), text()).prop_map(|(id, n)| Accepted::Job { id, n }),
        (text(), text()).prop_map(|(input, error)| Accepted::Invalid { input, error }),
        (text(), text()).prop_map(|(input, error)| Accepted::Refused { input, error }),
    ]
}

fn tree() -> impl Strategy<Value = TreeNode> {
    let leaf =
        (text(), any::<u64>(), any::<Option<u64>>()).prop_map(|(name, restarts, job)| TreeNode {
            name,
            kind: NodeKind::Worker,
            running: true,
            restarts,
            job,
            queued: Some(1),
            load: None,
            children: Vec::new(),
        });
    leaf.prop_recursive(3, 16, 4, |inner| {
        (text(), any::<u32>(), vec(inner, 0..4)).prop_map(|(name, max_restarts, children)| {
            TreeNode {
                name,
                kind: NodeKind::Supervisor {
                    strategy: "one_for_one".into(),
                    max_restarts,
                    period_ms: 10_000,
                },
                running: false,
                restarts: 0,
                job: None,
                queued: None,
                load: None,
                children,
            }
        })
    })
}

fn response() -> impl Strategy<Value = Response> {
    let job_info = (any::<u64>(), text(), any::<Option<String>>(), any::<u32>()).prop_map(
        |(id, n, tester, attempts)| JobInfo {
            id,
            n,
            tester,
            attempts,
        },
    );
    prop_oneof![
        vec(accepted(), 0..6).prop_map(|items| Response::Accepted { items }),
        report().prop_map(Response::Done),
        any::<u64>().prop_map(|id| Response::Pending { id }),
        (any::<u64>(), text()).prop_map(|(id, error)| Response::Unknown { id, error }),
        (vec(job_info, 0..6), any::<bool>()).prop_map(|(jobs, more)| Response::Jobs { jobs, more }),
        text().prop_map(|actor| Response::Killed { actor }),
        any::<u64>().prop_map(|id| Response::Cancelled { id }),
        tree().prop_map(Response::Tree),
        text().prop_map(|changes| Response::Reloaded { changes }),
        (shape(), finite()).prop_map(|(shape, area)| Response::Area { shape, area }),
        text().prop_map(|message| Response::Failed { message }),
        text().prop_map(|message| Response::Error { message }),
    ]
}

/// Reads one frame from `bytes` delivered in two pieces, split at `at`.
fn read_split(bytes: &[u8], at: usize) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    let (first, second) = bytes.split_at(at.min(bytes.len()));
    runtime.block_on(async {
        use tokio::io::AsyncWriteExt;
        client.write_all(first).await.expect("first part");
        let reading = protocol::read_frame(&mut server, MAX_FRAME_BYTES);
        let writing = async {
            tokio::task::yield_now().await;
            client.write_all(second).await.expect("second part");
        };
        let (frame, ()) = tokio::join!(reading, writing);
        frame.expect("frame").expect("not at end")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_or_over_allocate_the_decoders(bytes in hostile_bytes()) {
        let len = bytes.len();
        let (_, largest) = largest_allocation(|| protocol::decode::<Request>(&bytes));
        prop_assert!(largest <= allowance(len), "{largest} bytes for a {len}-byte request");
        let (_, largest) = largest_allocation(|| protocol::decode::<Response>(&bytes));
        prop_assert!(largest <= allowance(len), "{largest} bytes for a {len}-byte response");
        if len >= 4 {
            let header: [u8; 4] = bytes[..4].try_into().expect("four bytes");
            let _ = protocol::frame_len(header, MAX_FRAME_BYTES);
        }
        if len >= protocol::HELLO_LEN {
            let hello: [u8; 8] = bytes[..8].try_into().expect("eight bytes");
            prop_assert!(protocol::check_hello(hello).is_err() || hello == protocol::hello());
        }
    }

    #[test]
    fn every_request_round_trips(request in request()) {
        let frame = protocol::encode_frame(&request, MAX_FRAME_BYTES).expect("encode");
        prop_assert_eq!(protocol::decode::<Request>(&frame[4..]).expect("decode"), request);
    }

    #[test]
    fn every_response_round_trips(response in response()) {
        let frame = protocol::encode_frame(&response, MAX_FRAME_BYTES).expect("encode");
        prop_assert_eq!(protocol::decode::<Response>(&frame[4..]).expect("decode"), response);
    }

    #[test]
    fn a_frame_split_anywhere_reads_the_same(request in request(), at in any::<usize>()) {
        let frame = protocol::encode_frame(&request, MAX_FRAME_BYTES).expect("encode");
        let at = at % (frame.len() + 1);
        prop_assert_eq!(read_split(&frame, at), frame[4..].to_vec());
    }
}

#[test]
fn the_reported_frame_is_refused_within_a_small_allocation() {
    // The frame of the report (a Submit whose number claims 2^62 bytes): it aborted the daemon.
    let mut payload = vec![0x00, 0x01, 0xFD];
    payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
    payload.extend_from_slice(&[0x97, 0x00]);
    let (decoded, largest) = largest_allocation(|| protocol::decode::<Request>(&payload));
    assert!(decoded.is_err());
    assert!(largest <= allowance(payload.len()), "{largest} bytes");
}
