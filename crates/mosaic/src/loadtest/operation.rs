//! The operations of the seed's mixed workload, each with its row of the
//! seed's target table ("Performance Benchmarks").

/// Read or write: the mix's two classes (80:20 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
}

/// One row of the report. The order is the report's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    MetadataRead,
    RecordReadSimple,
    RecordReadFormulas,
    RecordWriteSimple,
    RecordWriteWorkflows,
    QuerySimple,
    QueryComplex,
    PageRender,
    ListRender,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::MetadataRead,
        Operation::RecordReadSimple,
        Operation::RecordReadFormulas,
        Operation::RecordWriteSimple,
        Operation::RecordWriteWorkflows,
        Operation::QuerySimple,
        Operation::QueryComplex,
        Operation::PageRender,
        Operation::ListRender,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`Operation::ALL`], for per-operation arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Machine name: the key in `--mix` and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Operation::MetadataRead => "metadata_read",
            Operation::RecordReadSimple => "record_read_simple",
            Operation::RecordReadFormulas => "record_read_formulas",
            Operation::RecordWriteSimple => "record_write_simple",
            Operation::RecordWriteWorkflows => "record_write_workflows",
            Operation::QuerySimple => "query_simple",
            Operation::QueryComplex => "query_complex",
            Operation::PageRender => "page_render",
            Operation::ListRender => "list_render",
        }
    }

    /// What the request is, for the table.
    pub fn label(self) -> &'static str {
        match self {
            Operation::MetadataRead => "metadata read (describe)",
            Operation::RecordReadSimple => "record read (simple)",
            Operation::RecordReadFormulas => "record read (2 formulas)",
            Operation::RecordWriteSimple => "record write (simple)",
            Operation::RecordWriteWorkflows => "record write (workflows)",
            Operation::QuerySimple => "query (indexed, 100 rows)",
            Operation::QueryComplex => "query (join+group, 1000)",
            Operation::PageRender => "page render (30 fields, 3 lists)",
            Operation::ListRender => "list view page (25 rows)",
        }
    }

    pub fn class(self) -> Class {
        match self {
            Operation::RecordWriteSimple | Operation::RecordWriteWorkflows => Class::Write,
            _ => Class::Read,
        }
    }

    /// The seed's target (p50, p99) in milliseconds. Metadata read uses the
    /// "cached" row: the harness describes the same objects over and over.
    pub fn target_ms(self) -> (f64, f64) {
        match self {
            Operation::MetadataRead => (1.0, 5.0),
            Operation::RecordReadSimple => (50.0, 150.0),
            Operation::RecordReadFormulas => (100.0, 300.0),
            Operation::RecordWriteSimple => (100.0, 300.0),
            Operation::RecordWriteWorkflows => (200.0, 500.0),
            Operation::QuerySimple => (100.0, 300.0),
            Operation::QueryComplex => (500.0, 2000.0),
            Operation::PageRender | Operation::ListRender => (100.0, 300.0),
        }
    }

    /// Default weight inside its class (reads and writes are normalised
    /// separately, so the class shares stay as configured).
    pub fn default_weight(self) -> u32 {
        match self {
            Operation::MetadataRead => 10,
            Operation::RecordReadSimple => 40,
            Operation::RecordReadFormulas => 30,
            Operation::QuerySimple => 15,
            Operation::QueryComplex => 5,
            Operation::PageRender => 10,
            Operation::ListRender => 5,
            Operation::RecordWriteSimple => 50,
            Operation::RecordWriteWorkflows => 50,
        }
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// Whether the target server can run an operation at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Reported as "n/a: <reason>" instead of being faked.
    Unavailable(String),
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available)
    }
}
