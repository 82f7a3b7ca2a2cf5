//! The harness every target shares: case counts and seeds, the result line `make fuzz`
//! tabulates, hostile strings and JSON values, and mutations of a valid fixture.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestError, TestRunner};
use serde_json::Value;

/// Cases per target when `PROPTEST_CASES` is not set: the short pass of `cargo test`.
pub const DEFAULT_CASES: u32 = 2_000;

/// The cases a target runs: `PROPTEST_CASES`, else `default`, never more than `cap` (for
/// targets whose single case costs seconds, see `zip.rs`).
pub fn cases(default: u32, cap: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(default)
        .clamp(1, cap)
}

/// The seed of a run: `PROPTEST_RNG_SEED` when set (to replay a run), else one derived from
/// the clock and printed with the result, so any failing run can be replayed exactly.
fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x5eed)
        })
}

thread_local! {
    /// What the cases of the running target came to (each test runs on its own thread).
    static TALLY: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts one case as `outcome` (`accepted`, `refused`...), so the result line shows that
/// the generators reach both sides of every rule, not only the refusals.
pub fn tally(outcome: &'static str) {
    TALLY.with(|t| *t.borrow_mut().entry(outcome).or_default() += 1);
}

/// Refusals longer than this are counted: an error message echoing a huge client value ends
/// up whole in a log line, a dead-letter queue or the web app.
pub const LONG_REFUSAL_BYTES: usize = 4 * 1024;

/// Counts a refusal message longer than [`LONG_REFUSAL_BYTES`] (see the report).
pub fn tally_refusal_size(message: &str) {
    if message.len() > LONG_REFUSAL_BYTES {
        tally("refusal_message_over_4KiB");
    }
}

fn take_tally() -> String {
    TALLY.with(|t| {
        std::mem::take(&mut *t.borrow_mut())
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Runs `test` on `cases` inputs of `strategy` and prints one result line:
/// `fuzz-result target=<name> cases=<n> seconds=<s> seed=<seed> result=pass outcomes=<tally>`
/// (the tally counts shrinking runs too when a case fails).
/// A failure panics with proptest's minimal failing input. Failure persistence is off: a
/// failing case is reproduced by its seed, and no regression file lands in the tree.
pub fn run<S>(target: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let seed = seed();
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // A long shrink of a 1 MiB input is not worth more than a minute.
        max_shrink_time: 60_000,
        ..Config::default()
    };
    // Printed first: a run the process aborts on (out of memory, a stack overflow) never
    // reaches its result line.
    eprintln!("fuzz-seed target={target} seed={seed}");
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    // To find the input a process abort (out of memory, a stack overflow) ended on: replay the
    // seed with FUZZ_TRACE=1 (each case's number on stderr before it runs), then with
    // FUZZ_DUMP_CASE=<n> (that case's input written to target/fuzz/<target>.case-<n>.txt).
    let trace = std::env::var_os("FUZZ_TRACE").is_some();
    let dump = std::env::var("FUZZ_DUMP_CASE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let case = std::cell::Cell::new(0u64);
    let outcome = runner.run(&strategy, |value| {
        case.set(case.get() + 1);
        if trace {
            eprintln!("fuzz-case {target} {}", case.get());
        }
        if dump == Some(case.get()) {
            let file = format!(
                "{}/../target/fuzz/{target}.case-{}.txt",
                env!("CARGO_MANIFEST_DIR"),
                case.get()
            );
            let written = std::fs::write(&file, format!("{value:#?}"));
            eprintln!("fuzz-case {target} {}: {file}: {written:?}", case.get());
        }
        test(value)
    });
    let seconds = started.elapsed().as_secs_f64();
    let tally = take_tally();
    match outcome {
        Ok(()) => println!(
            "fuzz-result target={target} cases={cases} seconds={seconds:.1} seed={seed} result=pass outcomes={tally}"
        ),
        Err(TestError::Fail(reason, input)) => {
            println!(
                "fuzz-result target={target} cases={cases} seconds={seconds:.1} seed={seed} result=FAIL"
            );
            panic!(
                "{target}: {reason}\nminimal failing input: {input:#?}\nreplay with PROPTEST_RNG_SEED={seed}"
            )
        }
        Err(TestError::Abort(reason)) => {
            println!(
                "fuzz-result target={target} cases={cases} seconds={seconds:.1} seed={seed} result=ABORT"
            );
            panic!("{target}: aborted: {reason} (seed {seed})")
        }
    }
}

/// Runs `n` deterministic scenarios (`scenario(i)` for `i` in `0..n`) and prints the same
/// result line as [`run`], for targets whose single case costs seconds.
pub fn run_fixed(target: &str, n: usize, scenario: impl Fn(usize) -> TestCaseResult) {
    let started = Instant::now();
    let outcome = (0..n).try_for_each(|i| scenario(i).map_err(|e| (i, e)));
    let seconds = started.elapsed().as_secs_f64();
    let tally = take_tally();
    match outcome {
        Ok(()) => println!(
            "fuzz-result target={target} cases={n} seconds={seconds:.1} seed=fixed result=pass outcomes={tally}"
        ),
        Err((i, e)) => {
            println!(
                "fuzz-result target={target} cases={n} seconds={seconds:.1} seed=fixed result=FAIL"
            );
            panic!("{target}: scenario {i}: {e}")
        }
    }
}

/// A fixture of `events/`, parsed.
pub fn fixture(path: &str) -> Value {
    let full = format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Pieces attackers and accidents are made of: separators and traversal, control and
/// invisible characters, look-alikes, normalisation pairs, quotes and the service's own
/// vocabulary.
const FRAGMENTS: &[&str] = &[
    "..",
    ".",
    "/",
    "\\",
    "//",
    "../",
    "./",
    "C:",
    "c:\\",
    "~",
    "\0",
    "\n",
    "\r\n",
    "\t",
    "\u{7}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{fffd}",
    "é",
    "e\u{301}",
    "İ",
    "ß",
    "ﬀ",
    "😀",
    "𝔘",
    "中文",
    " ",
    "  ",
    "%2e%2e",
    "%00",
    "${x}",
    "\"",
    "'",
    "`",
    "<script>",
    "|",
    "*",
    "?",
    ":",
    ";",
    ",",
    "=",
    "[",
    "]",
    "{",
    "}",
    "null",
    "true",
    "0",
    "-1",
    "a",
    "-",
    "_",
    "APPROVED",
    "REJECTED",
    "approved",
    " APPROVED ",
    "PENDING",
    "single",
    "dual",
    "tre-ig",
    "tre-rit",
    "InformationGovernance",
    "ResearchIT",
    "egress_manifest_",
    ".json",
    ".csv",
    "arn:aws:s3:::",
    "@",
    "example.org",
];

/// One [`FRAGMENTS`] entry.
pub fn fragment() -> impl Strategy<Value = String> {
    proptest::sample::select(FRAGMENTS).prop_map(str::to_string)
}

/// Strings that look like values and strings that break rules: plausible identifiers,
/// arbitrary Unicode, concatenated fragments, empty, long (around the limits: 80, 128, 256,
/// 1024, 2000, 65535) and, rarely, 1 MiB.
pub fn hostile_string() -> BoxedStrategy<String> {
    // Weights out of about 2,000: one string in 2,000 is 1 MiB, so huge values are tried
    // without making every case slow.
    prop_oneof![
        600 => "[a-zA-Z0-9_.-]{1,24}",
        300 => any::<String>(),
        400 => proptest::collection::vec(fragment(), 1..8).prop_map(|v| v.concat()),
        200 => (proptest::collection::vec(fragment(), 0..4), "[a-z0-9]{1,12}")
            .prop_map(|(f, s)| format!("{}{s}{}", f.concat(), f.concat())),
        100 => Just(String::new()),
        100 => "[ \t\r\n]{1,4}",
        200 => (
            proptest::sample::select(
                &[79usize, 80, 81, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 1999, 2000,
                  2001, 65_535, 65_536][..]
            ),
            any::<char>()
        )
            .prop_map(|(n, c)| if c.is_control() { "x".repeat(n) } else { c.to_string().repeat(n) }),
        100 => (1usize..4096).prop_map(|n| "é".repeat(n)),
        1 => Just(()).prop_map(|()| "x".repeat(1 << 20)),
    ]
    .boxed()
}

/// Any JSON value: every type, edge numbers, hostile strings, nested containers, and (rarely)
/// nesting deeper than serde_json's recursion limit.
pub fn hostile_value() -> BoxedStrategy<Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        proptest::sample::select(
            &[0i64, 1, -1, 2, 65_535, 65_536, 4_294_967_295, 4_294_967_296][..]
        )
        .prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        Just(serde_json::json!(1.5)),
    ];
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number,
        5 => hostile_string().prop_map(Value::String),
    ];
    let nested = leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-zA-Z_]{1,12}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    prop_oneof![
        40 => nested,
        1 => (100usize..300).prop_map(|depth| {
            (0..depth).fold(Value::Null, |v, _| Value::Array(vec![v]))
        }),
    ]
    .boxed()
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// `["a", "0", "b"]`-style paths: digits are array indexes.
pub fn path(parts: &[&str]) -> Vec<Step> {
    parts
        .iter()
        .map(|p| match p.parse::<usize>() {
            Ok(i) => Step::Index(i),
            Err(_) => Step::Key(p.to_string()),
        })
        .collect()
}

/// A change to a JSON document.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// The member at the path is removed.
    Remove(Vec<Step>),
    /// The value at the path is replaced (or the member added).
    Set(Vec<Step>, Value),
}

impl Mutation {
    /// The top-level (or last) member this mutation names, for error-naming checks.
    pub fn field(&self) -> Option<&str> {
        let p = match self {
            Mutation::Remove(p) | Mutation::Set(p, _) => p,
        };
        p.iter().rev().find_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
    }

    /// Applies the mutation; a path through a missing or non-container value is a no-op.
    pub fn apply(&self, doc: &mut Value) {
        let (path, set) = match self {
            Mutation::Remove(p) => (p, None),
            Mutation::Set(p, v) => (p, Some(v)),
        };
        let Some((last, parents)) = path.split_last() else {
            if let Some(v) = set {
                *doc = v.clone();
            }
            return;
        };
        let mut at = doc;
        for step in parents {
            let next = match (step, at) {
                (Step::Key(k), Value::Object(m)) => m.get_mut(k),
                (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
                _ => None,
            };
            match next {
                Some(n) => at = n,
                None => return,
            }
        }
        match (last, at, set) {
            (Step::Key(k), Value::Object(m), Some(v)) => {
                m.insert(k.clone(), v.clone());
            }
            (Step::Key(k), Value::Object(m), None) => {
                m.remove(k);
            }
            (Step::Index(i), Value::Array(a), Some(v)) if *i < a.len() => a[*i] = v.clone(),
            (Step::Index(i), Value::Array(a), None) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        }
    }
}

/// Mutations of the members at `paths`: removed, replaced by any hostile value, or by a
/// hostile string (the type most fields expect); and unknown members added next to them.
pub fn mutation(paths: Vec<Vec<Step>>) -> impl Strategy<Value = Mutation> {
    let paths = proptest::sample::select(paths);
    prop_oneof![
        2 => paths.clone().prop_map(Mutation::Remove),
        4 => (paths.clone(), hostile_value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        4 => (paths.clone(), hostile_string()).prop_map(|(p, s)| Mutation::Set(p, Value::String(s))),
        1 => (paths, "[a-zA-Z_:]{1,16}", hostile_value()).prop_map(|(mut p, k, v)| {
            // An extra member beside the chosen one.
            p.pop();
            p.push(Step::Key(format!("x_extra_{k}")));
            Mutation::Set(p, v)
        }),
    ]
}

/// Damage to the serialised text itself: cut short, a byte inserted, a member duplicated, or
/// the whole text replaced by arbitrary characters.
#[derive(Debug, Clone)]
pub enum TextDamage {
    /// The text is cut after this fraction (per mille) of its length.
    Truncate(u16),
    /// This string is inserted at this fraction (per mille) of the length.
    Insert(u16, String),
    /// A duplicate member `"key": value` is appended to the outer object.
    DuplicateMember(String, String),
    /// Arbitrary text instead of JSON.
    Replace(String),
}

impl TextDamage {
    /// The damaged text.
    pub fn apply(&self, text: &str) -> String {
        let at = |per_mille: u16| {
            let mut i = text.len() * usize::from(per_mille.min(1000)) / 1000;
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        match self {
            TextDamage::Truncate(p) => text[..at(*p)].to_string(),
            TextDamage::Insert(p, s) => {
                let i = at(*p);
                format!("{}{s}{}", &text[..i], &text[i..])
            }
            TextDamage::DuplicateMember(k, v) => match text.rfind('}') {
                Some(i) => format!(
                    "{},{}:{}{}",
                    &text[..i],
                    Value::String(k.clone()),
                    v,
                    &text[i..]
                ),
                None => text.to_string(),
            },
            TextDamage::Replace(s) => s.clone(),
        }
    }
}

/// A [`TextDamage`] that duplicates one of `keys` (with a hostile value) or breaks the text.
pub fn text_damage(keys: Vec<&'static str>) -> impl Strategy<Value = TextDamage> {
    prop_oneof![
        (0u16..=1000).prop_map(TextDamage::Truncate),
        (0u16..=1000, prop_oneof![fragment(), any::<String>()])
            .prop_map(|(p, s)| TextDamage::Insert(p, s)),
        (proptest::sample::select(keys), hostile_value())
            .prop_map(|(k, v)| TextDamage::DuplicateMember(k.to_string(), v.to_string())),
        prop_oneof![any::<String>(), "[\\[\\]{}\",:0-9a-z ]{0,64}"].prop_map(TextDamage::Replace),
    ]
}

/// True when `message` quotes `value` (`{value:?}`), or, when the message was cut at
/// `shared::error::MAX_MESSAGE_BYTES` because the value is huge, quotes its beginning.
pub fn quotes(message: &str, value: &str) -> bool {
    let quoted = format!("{value:?}");
    if message.contains(&quoted) {
        return true;
    }
    let cut = message.ends_with("bytes in all)");
    let head: String = quoted.chars().take(64).collect();
    cut && message.contains(&head)
}

/// True when `message` names `field` the way the service's errors do: in backticks.
pub fn names_field(message: &str, field: &str) -> bool {
    message.contains(&format!("`{field}`"))
}

/// A current-thread runtime for the async services (they await only in-memory fakes).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}
