//! Shared by the benchmark programs: the measurement kinds, their sizes and iteration counts, and
//! the OSU micro-benchmarks table format (written by `snoo-bench` and `bench/mpich/osu_like.c`,
//! read back by `bench-report` and the tests).

#![deny(missing_docs)]

use std::fmt::Write as _;

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// osu_latency: ping-pong, one-way time in microseconds.
    Latency,
    /// osu_bw: windows of 64 non-blocking sends, MB/s.
    Bw,
    /// osu_bibw: windows in both directions at once, MB/s.
    Bibw,
    /// The paper's experiment: a fixed total moved with blocking sends per buffer size, MB/s.
    Seed,
    /// How long a receiver asleep on its doorbell takes to see a message, microseconds.
    Wake,
    /// Every rank sends a message to every other rank (non-blocking sends and receives, then a
    /// wait for all), repeated: aggregate and per-rank MB/s. The only kind that uses every rank.
    Exchange,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::Latency,
        Kind::Bw,
        Kind::Bibw,
        Kind::Seed,
        Kind::Wake,
        Kind::Exchange,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Bw => "bw",
            Kind::Bibw => "bibw",
            Kind::Seed => "seed",
            Kind::Wake => "wake",
            Kind::Exchange => "exchange",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The title in the header's first line, after the implementation's name.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Latency => "Latency Test",
            Kind::Bw => "Bandwidth Test",
            Kind::Bibw => "Bi-Directional Bandwidth Test",
            Kind::Seed => "Seed (1 GiB blocking) Bandwidth Test",
            Kind::Wake => "Doorbell Wake-up Latency Test",
            Kind::Exchange => "Exchange Bandwidth Test",
        }
    }

    /// The column header, formatted as OSU does (`%-10s%18s`, one `%18s` per value column).
    pub fn column(self) -> String {
        self.value_columns()
            .iter()
            .fold(format!("{:<10}", "# Size"), |s, c| s + &format!("{c:>18}"))
    }

    /// The headers of the value columns, one per value in a row.
    pub fn value_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Latency | Kind::Wake => &["Latency (us)"],
            Kind::Exchange => &["Aggregate (MB/s)", "Per-rank (MB/s)"],
            _ => &["Bandwidth (MB/s)"],
        }
    }

    /// The JSON names of the values in a row (`value` first, as in every kind).
    pub fn value_names(self) -> &'static [&'static str] {
        match self {
            Kind::Exchange => &["value", "per_rank"],
            _ => &["value"],
        }
    }

    /// True when larger values are better (bandwidths).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Kind::Latency | Kind::Wake)
    }

    /// Default smallest and largest message size.
    pub fn default_range(self) -> (usize, usize) {
        match self {
            Kind::Latency | Kind::Bw | Kind::Bibw => (1, 4 << 20),
            Kind::Seed => (64, 4 << 20),
            Kind::Wake => (8, 8),
            Kind::Exchange => (1, 1 << 20),
        }
    }

    /// Message sizes from `min` to `max`: powers of two (OSU), powers of four for seed (from 64 B)
    /// and exchange (1 B, 4 B, … 4 KiB, … 1 MiB).
    pub fn sizes(self, min: usize, max: usize) -> Vec<usize> {
        let step = if matches!(self, Kind::Seed | Kind::Exchange) {
            4
        } else {
            2
        };
        let mut out = Vec::new();
        let mut s = if min == 0 {
            out.push(0);
            1
        } else {
            min
        };
        while s <= max {
            out.push(s);
            s *= step;
        }
        out
    }
}

/// Warm-up and timed iterations for a message size, as OSU chooses them (10000/100 up to 8 KiB,
/// 1000/10 above for latency; 100/10 and 20/2 for the bandwidth windows; for exchange those of
/// `bench/mpich/osu_coll.c`, 2000/200 up to 8 KiB, 200/20 up to 64 KiB, 50/5 above), shortened
/// for the largest sizes so a full run stays short; `scale` multiplies the timed count (at
/// least 1). `bench/mpich/osu_like.c` and `osu_exchange.c` keep the same counts.
pub fn iterations(kind: Kind, size: usize, scale: f64) -> (usize, usize) {
    let (skip, iters) = match kind {
        Kind::Latency if size <= 8192 => (100, 10_000),
        Kind::Latency if size <= 256 << 10 => (10, 1000),
        Kind::Latency => (5, 100),
        Kind::Bw | Kind::Bibw if size <= 8192 => (10, 100),
        Kind::Bw | Kind::Bibw => (2, 20),
        Kind::Seed => (0, 1),
        Kind::Wake => (2, 20),
        Kind::Exchange if size <= 8192 => (200, 2000),
        Kind::Exchange if size <= 64 << 10 => (20, 200),
        Kind::Exchange => (5, 50),
    };
    (skip, ((iters as f64 * scale).round() as usize).max(1))
}

/// Messages in flight per bandwidth iteration (OSU's window size).
pub const WINDOW: usize = 64;

/// Parses a size with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1usize << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("{s:?} is not a size (a number with an optional K/M/G suffix)"))
}

/// One measured table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The header's first line, without `# `.
    pub title: String,
    /// (message size, value) in the order measured.
    pub rows: Vec<(usize, f64)>,
}

impl Table {
    /// The value measured for `size`.
    pub fn get(&self, size: usize) -> Option<f64> {
        self.rows.iter().find(|r| r.0 == size).map(|r| r.1)
    }
}

/// A measured table with one or more values per row (exchange: aggregate and per-rank MB/s).
#[derive(Clone, Debug, PartialEq)]
pub struct Columns {
    /// The header's first line, without `# `.
    pub title: String,
    /// (message size, values) in the order measured.
    pub rows: Vec<(usize, Vec<f64>)>,
}

impl Columns {
    /// Value column `i` (0 is the first after the size) as a [`Table`]; rows that lack it are left
    /// out.
    pub fn column(&self, i: usize) -> Table {
        Table {
            title: self.title.clone(),
            rows: self
                .rows
                .iter()
                .filter_map(|(s, v)| v.get(i).map(|&v| (*s, v)))
                .collect(),
        }
    }
}

/// Formats one row as OSU does (`%-10d%18.2f`).
pub fn row(size: usize, value: f64) -> String {
    row_values(size, &[value])
}

/// Formats a row of several values (`%-10d` then `%18.2f` for each).
pub fn row_values(size: usize, values: &[f64]) -> String {
    values
        .iter()
        .fold(format!("{size:<10}"), |s, v| s + &format!("{v:>18.2}"))
}

/// The header lines of a table.
pub fn header(implementation: &str, kind: Kind) -> String {
    format!("# {implementation} {} v1\n{}", kind.title(), kind.column())
}

/// A table as JSON.
pub fn to_json(implementation: &str, kind: Kind, rows: &[(usize, f64)]) -> String {
    let rows: Vec<(usize, Vec<f64>)> = rows.iter().map(|&(s, v)| (s, vec![v])).collect();
    to_json_values(implementation, kind, &rows)
}

/// A table of one or more values per row as JSON: the values are named by
/// [`Kind::value_names`] (`{"size":4096,"value":…,"per_rank":…}` for exchange).
pub fn to_json_values(implementation: &str, kind: Kind, rows: &[(usize, Vec<f64>)]) -> String {
    let unit = if kind.higher_is_better() {
        "MB/s"
    } else {
        "us"
    };
    let mut s = format!(
        "{{\"implementation\":\"{implementation}\",\"kind\":\"{}\",\"unit\":\"{unit}\",\"results\":[",
        kind.name()
    );
    for (i, (size, vs)) in rows.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}{{\"size\":{size}");
        for (name, v) in kind.value_names().iter().zip(vs) {
            let _ = write!(s, ",\"{name}\":{v:.4}");
        }
        s.push('}');
    }
    s.push_str("]}");
    s
}

/// Parses OSU-format output: `# ` header lines (the first is the title), then `SIZE VALUE` rows.
/// Other lines (launcher noise) are ignored, and so is the `[rank] ` prefix snoo-run adds; a row
/// that does not parse is an error.
pub fn parse_table(text: &str) -> Result<Table, String> {
    let c = parse_columns(text)?;
    if let Some((size, v)) = c.rows.iter().find(|r| r.1.len() != 1) {
        return Err(format!(
            "row of size {size} has {} values: expected SIZE VALUE",
            v.len()
        ));
    }
    Ok(c.column(0))
}

/// Parses OSU-format output as [`parse_table`] does, with any number (at least one, the same in
/// every row) of values after the size.
pub fn parse_columns(text: &str) -> Result<Columns, String> {
    let mut title = None;
    let mut rows: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let line = strip_rank(line.trim_end());
        if let Some(h) = line.strip_prefix("# ") {
            if title.is_none() {
                title = Some(h.to_string());
            } else if h.starts_with("Size") {
                in_table = true;
            }
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let a = it.next().unwrap_or_default();
        let size = a.parse().map_err(|_| format!("row {line:?}: bad size"))?;
        let v = it
            .map(|b| b.parse::<f64>())
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| format!("row {line:?}: bad value"))?;
        if v.is_empty() || rows.first().is_some_and(|r| r.1.len() != v.len()) {
            return Err(format!(
                "row {line:?}: expected SIZE VALUE…, as the rows before"
            ));
        }
        rows.push((size, v));
    }
    let title = title.ok_or("no header line")?;
    if !in_table {
        return Err("no `# Size` column header".into());
    }
    Ok(Columns { title, rows })
}

fn strip_rank(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((r, tail)) = rest.split_once("] ") {
            if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
                return tail;
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips() {
        let text = format!(
            "{}\n{}\n{}\n",
            header("SNOO_MPI", Kind::Latency),
            row(1, 0.5),
            row(4096, 12.25)
        );
        assert!(text.starts_with("# SNOO_MPI Latency Test v1\n# Size          Latency (us)\n"));
        assert!(text.contains("\n1                       0.50\n"));
        let t = parse_table(&text).unwrap();
        assert_eq!(t.rows, vec![(1, 0.5), (4096, 12.25)]);
        let prefixed: String = text.lines().map(|l| format!("[0] {l}\n")).collect();
        assert_eq!(parse_table(&prefixed).unwrap(), t);
    }

    #[test]
    fn several_columns_round_trip() {
        let text = format!(
            "{}\n{}\n{}\n",
            header("SNOO_MPI", Kind::Exchange),
            row_values(1, &[4.0, 1.0]),
            row_values(4096, &[800.5, 200.25])
        );
        assert!(text.starts_with(
            "# SNOO_MPI Exchange Bandwidth Test v1\n# Size      Aggregate (MB/s)   Per-rank (MB/s)\n"
        ));
        let c = parse_columns(&text).unwrap();
        assert_eq!(
            c.rows,
            vec![(1, vec![4.0, 1.0]), (4096, vec![800.5, 200.25])]
        );
        assert_eq!(c.column(1).rows, vec![(1, 1.0), (4096, 200.25)]);
        assert!(
            parse_table(&text).is_err(),
            "two values are not a SIZE VALUE table"
        );
        let ragged = format!("{text}{}\n", row(8, 1.0));
        assert!(parse_columns(&ragged).is_err());
        let json = to_json_values("SNOO_MPI", Kind::Exchange, &[(1, vec![4.0, 1.0])]);
        assert!(json.ends_with(r#""results":[{"size":1,"value":4.0000,"per_rank":1.0000}]}"#));
    }

    #[test]
    fn sizes_and_suffixes() {
        assert_eq!(Kind::Seed.sizes(64, 4096), vec![64, 256, 1024, 4096]);
        assert_eq!(Kind::Bw.sizes(1, 8), vec![1, 2, 4, 8]);
        assert_eq!(Kind::Latency.sizes(0, 2), vec![0, 1, 2]);
        let ex = Kind::Exchange.sizes(1, 1 << 20);
        assert_eq!(ex.len(), 11);
        assert!(ex.contains(&4096) && ex.last() == Some(&(1 << 20)));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
    }
}
