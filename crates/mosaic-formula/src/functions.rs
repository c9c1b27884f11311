//! The function catalog: names, arities, parameter names and simple
//! signatures. Polymorphic and special functions are typed in `checker.rs`.
//!
//! Signature codes: `T` Text, `N` Number, `B` Boolean, `D` Date,
//! `Z` Datetime, `M` Time, `d` Date|Datetime, `u` Date|Datetime|Time,
//! `x` Text|Datetime, `y` Text|Date, `a` any value, `=` special (checker).
//! For variadic functions the last parameter repeats.

macro_rules! catalog {
    ($( $v:ident $name:literal $min:literal $max:literal $ret:literal [$($p:literal),*] $doc:literal ;)*) => {
        /// A built-in function.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Func { $($v),* }

        /// Every function, in catalog order.
        pub const ALL_FUNCTIONS: &[Func] = &[$(Func::$v),*];

        impl Func {
            /// Looks a function up by its upper-case name.
            pub fn lookup(upper_name: &str) -> Option<Func> {
                match upper_name { $($name => Some(Func::$v),)* _ => None }
            }
            pub fn name(self) -> &'static str {
                match self { $(Func::$v => $name),* }
            }
            /// Minimum and maximum argument counts (65535: variadic).
            pub fn arity(self) -> (usize, usize) {
                match self { $(Func::$v => ($min, $max)),* }
            }
            /// Return-type code (see module docs).
            pub(crate) fn ret_code(self) -> char {
                match self { $(Func::$v => $ret),* }
            }
            /// Parameters as `code:name`.
            pub(crate) fn params(self) -> &'static [&'static str] {
                match self { $(Func::$v => &[$($p),*]),* }
            }
            /// One-line description for the docs.
            pub fn summary(self) -> &'static str {
                match self { $(Func::$v => $doc),* }
            }
        }
    };
}

// Variadic functions declare a maximum of 65535; the parser caps calls at
// MAX_ARGUMENTS, far below.
const _: () = assert!(65_535 > crate::limits::MAX_ARGUMENTS);

catalog! {
    // Logical
    If "IF" 3 3 '=' ["B:logical_test", "a:value_if_true", "a:value_if_false"] "value_if_true when logical_test is TRUE, else value_if_false";
    Case "CASE" 4 65535 '=' ["a:expression", "a:value", "a:result"] "compares expression to each value; result of the first match, else the last argument";
    And "AND" 1 65535 'B' ["B:logical"] "TRUE when every argument is TRUE";
    Or "OR" 1 65535 'B' ["B:logical"] "TRUE when any argument is TRUE";
    Not "NOT" 1 1 'B' ["B:logical"] "negation";
    IsBlank "ISBLANK" 1 1 'B' ["a:expression"] "TRUE for null or empty text";
    IsNull "ISNULL" 1 1 'B' ["a:expression"] "TRUE for null; always FALSE for text (text is never null)";
    BlankValue "BLANKVALUE" 2 2 '=' ["a:expression", "a:substitute_expression"] "substitute_expression when expression is blank";
    NullValue "NULLVALUE" 2 2 '=' ["a:expression", "a:substitute_expression"] "substitute_expression when expression is null";
    IsNumber "ISNUMBER" 1 1 'B' ["T:text"] "TRUE when text is a number";
    IsPickval "ISPICKVAL" 2 2 'B' ["=:picklist_field", "T:text_literal"] "TRUE when the picklist field has the value";
    IsChanged "ISCHANGED" 1 1 'B' ["=:field"] "TRUE when the update changes the field";
    IsNew "ISNEW" 0 0 'B' [] "TRUE while the record is being created";
    IsClone "ISCLONE" 0 0 'B' [] "TRUE while the record is being cloned";
    PriorValue "PRIORVALUE" 1 1 '=' ["=:field"] "value of the field before the update";
    Includes "INCLUDES" 2 2 'B' ["=:multiselect_picklist_field", "T:text_literal"] "TRUE when the multi-select picklist includes the value";
    Coalesce "COALESCE" 1 65535 '=' ["a:value"] "first non-blank argument (Mosaic extension)";
    // Text
    Len "LEN" 1 1 'N' ["T:text"] "number of characters";
    Left "LEFT" 2 2 'T' ["T:text", "N:num_chars"] "first num_chars characters";
    Right "RIGHT" 2 2 'T' ["T:text", "N:num_chars"] "last num_chars characters";
    Mid "MID" 3 3 'T' ["T:text", "N:start_num", "N:num_chars"] "num_chars characters from start_num (1-based)";
    Find "FIND" 2 3 'N' ["T:search_text", "T:text", "N:start_num"] "1-based position of search_text in text, 0 if absent (case-sensitive)";
    Substitute "SUBSTITUTE" 3 3 'T' ["T:text", "T:old_text", "T:new_text"] "replaces every old_text with new_text";
    Upper "UPPER" 1 2 'T' ["T:text", "T:locale"] "upper case";
    Lower "LOWER" 1 2 'T' ["T:text", "T:locale"] "lower case";
    Trim "TRIM" 1 1 'T' ["T:text"] "removes leading and trailing spaces and tabs";
    Lpad "LPAD" 2 3 'T' ["T:text", "N:padded_length", "T:pad_string"] "pads on the left (or truncates) to padded_length";
    Rpad "RPAD" 2 3 'T' ["T:text", "N:padded_length", "T:pad_string"] "pads on the right (or truncates) to padded_length";
    Contains "CONTAINS" 2 2 'B' ["T:text", "T:compare_text"] "TRUE when text contains compare_text (case-sensitive)";
    Begins "BEGINS" 2 2 'B' ["T:text", "T:compare_text"] "TRUE when text begins with compare_text (case-sensitive)";
    Text "TEXT" 1 1 'T' ["=:value"] "converts a number, date, datetime, time, boolean or picklist to text";
    Value "VALUE" 1 1 'N' ["T:text"] "converts text to a number; null when it is not one";
    Regex "REGEX" 2 2 'B' ["T:text", "T:regex_text"] "TRUE when the whole text matches the regular expression";
    Hyperlink "HYPERLINK" 2 3 'T' ["T:url", "T:friendly_name", "T:target"] "an HTML link";
    Br "BR" 0 0 'T' [] "an HTML line break";
    Image "IMAGE" 2 4 'T' ["T:image_url", "T:alternate_text", "N:height", "N:width"] "an HTML image tag";
    CaseSafeId "CASESAFEID" 1 1 'T' ["T:id"] "the 18-character case-insensitive form of a 15-character id";
    Initcap "INITCAP" 1 1 'T' ["T:text"] "first letter of each word upper case, the rest lower case";
    Reverse "REVERSE" 1 1 'T' ["T:text"] "the characters in reverse order";
    Ascii "ASCII" 1 1 'N' ["T:character"] "code point of the first character";
    Unichar "UNICHAR" 1 1 'T' ["N:code"] "the character with the code point";
    HtmlEncode "HTMLENCODE" 1 1 'T' ["T:text"] "escapes HTML-reserved characters";
    JsEncode "JSENCODE" 1 1 'T' ["T:text"] "escapes for a JavaScript string";
    JsInHtmlEncode "JSINHTMLENCODE" 1 1 'T' ["T:text"] "HTMLENCODE of JSENCODE";
    UrlEncode "URLENCODE" 1 1 'T' ["T:text"] "percent-encodes UTF-8 for URLs";
    Ends "ENDS" 2 2 'B' ["T:text", "T:compare_text"] "TRUE when text ends with compare_text (Mosaic extension)";
    Concat "CONCAT" 1 65535 'T' ["T:text"] "joins its arguments (Mosaic extension)";
    Rept "REPT" 2 2 'T' ["T:text", "N:times"] "text repeated (Mosaic extension)";
    Ltrim "LTRIM" 1 1 'T' ["T:text"] "removes leading spaces and tabs (Mosaic extension)";
    Rtrim "RTRIM" 1 1 'T' ["T:text"] "removes trailing spaces and tabs (Mosaic extension)";
    RegexReplace "REGEXREPLACE" 3 3 'T' ["T:text", "T:regex_text", "T:replacement"] "replaces every match; $1 refers to groups (Mosaic extension)";
    // Math
    Abs "ABS" 1 1 'N' ["N:number"] "absolute value";
    Ceiling "CEILING" 1 1 'N' ["N:number"] "rounds up, away from zero for negatives";
    Floor "FLOOR" 1 1 'N' ["N:number"] "rounds down, towards zero for negatives";
    MCeiling "MCEILING" 1 1 'N' ["N:number"] "rounds up to the next integer (towards zero for negatives)";
    MFloor "MFLOOR" 1 1 'N' ["N:number"] "rounds down to the next integer (away from zero for negatives)";
    Round "ROUND" 2 2 'N' ["N:number", "N:num_digits"] "rounds half away from zero to num_digits places (negative: left of the point)";
    Trunc "TRUNC" 1 2 'N' ["N:number", "N:num_digits"] "truncates towards zero to num_digits places";
    Max "MAX" 1 65535 '=' ["n:number"] "largest argument (numbers, dates, datetimes or times)";
    Min "MIN" 1 65535 '=' ["n:number"] "smallest argument (numbers, dates, datetimes or times)";
    Mod "MOD" 2 2 'N' ["N:number", "N:divisor"] "remainder, with the sign of number; null when divisor is 0";
    Sqrt "SQRT" 1 1 'N' ["N:number"] "square root; null for negatives";
    Exp "EXP" 1 1 'N' ["N:number"] "e raised to number";
    Ln "LN" 1 1 'N' ["N:number"] "natural logarithm; null for non-positive numbers";
    Log "LOG" 1 1 'N' ["N:number"] "base-10 logarithm; null for non-positive numbers";
    Power "POWER" 2 2 'N' ["N:number", "N:exponent"] "number raised to exponent (same as ^)";
    Pi "PI" 0 0 'N' [] "3.14159...";
    Sin "SIN" 1 1 'N' ["N:radians"] "sine";
    Cos "COS" 1 1 'N' ["N:radians"] "cosine";
    Tan "TAN" 1 1 'N' ["N:radians"] "tangent";
    Asin "ASIN" 1 1 'N' ["N:number"] "arc sine in radians; null outside [-1, 1]";
    Acos "ACOS" 1 1 'N' ["N:number"] "arc cosine in radians; null outside [-1, 1]";
    Atan "ATAN" 1 1 'N' ["N:number"] "arc tangent in radians";
    Atan2 "ATAN2" 2 2 'N' ["N:x", "N:y"] "angle of the point (x, y) in radians";
    Sign "SIGN" 1 1 'N' ["N:number"] "-1, 0 or 1 (Mosaic extension)";
    // Location
    Geolocation "GEOLOCATION" 2 2 '=' ["N:latitude", "N:longitude"] "a location from latitude and longitude in degrees (only as an argument of DISTANCE)";
    Distance "DISTANCE" 3 3 'N' ["=:location1", "=:location2", "T:unit"] "great-circle distance between two locations in 'mi' or 'km' (haversine)";
    Sum "SUM" 1 65535 'N' ["N:number"] "sum of the non-null arguments (Mosaic extension)";
    Average "AVERAGE" 1 65535 'N' ["N:number"] "mean of the non-null arguments (Mosaic extension)";
    // Date and time
    Today "TODAY" 0 0 'D' [] "the current date in the user's time zone";
    Now "NOW" 0 0 'Z' [] "the current datetime";
    TimeNow "TIMENOW" 0 0 'M' [] "the current time of day (GMT)";
    Date "DATE" 3 3 'D' ["N:year", "N:month", "N:day"] "a date; null when invalid";
    DateValue "DATEVALUE" 1 1 'D' ["x:expression"] "date of a datetime (GMT) or of text YYYY-MM-DD";
    DatetimeValue "DATETIMEVALUE" 1 1 'Z' ["y:expression"] "datetime (GMT) of a date or of text YYYY-MM-DD HH:MM:SS";
    TimeValue "TIMEVALUE" 1 1 'M' ["x:expression"] "time of a datetime (GMT) or of text HH:MM:SS.MS";
    Year "YEAR" 1 1 'N' ["D:date"] "the year";
    Month "MONTH" 1 1 'N' ["D:date"] "the month, 1-12";
    Day "DAY" 1 1 'N' ["D:date"] "the day of the month";
    Hour "HOUR" 1 1 'N' ["M:time"] "the hour, 0-23";
    Minute "MINUTE" 1 1 'N' ["M:time"] "the minute";
    Second "SECOND" 1 1 'N' ["M:time"] "the second";
    Millisecond "MILLISECOND" 1 1 'N' ["M:time"] "the millisecond";
    Weekday "WEEKDAY" 1 1 'N' ["D:date"] "1 (Sunday) to 7 (Saturday)";
    AddMonths "ADDMONTHS" 2 2 'D' ["D:date", "N:num"] "adds months; month ends stay month ends";
    IsoWeek "ISOWEEK" 1 1 'N' ["D:date"] "ISO 8601 week number";
    IsoYear "ISOYEAR" 1 1 'N' ["D:date"] "ISO 8601 week-numbering year";
    DayOfYear "DAYOFYEAR" 1 1 'N' ["D:date"] "1-366";
    UnixTimestamp "UNIXTIMESTAMP" 1 1 'N' ["u:value"] "seconds since 1970-01-01T00:00Z (for a time: since midnight)";
    FromUnixTime "FROMUNIXTIME" 1 1 'Z' ["N:seconds"] "the datetime that many seconds after 1970-01-01T00:00Z";
    FormatDuration "FORMATDURATION" 1 2 'T' ["=:seconds_or_start", "=:include_days_or_end"] "HH:MM:SS of seconds, or D:HH:MM:SS between two datetimes";
    EoMonth "EOMONTH" 1 2 'D' ["D:date", "N:months"] "last day of the month, months later (Mosaic extension)";
    Quarter "QUARTER" 1 1 'N' ["D:date"] "1-4 (Mosaic extension)";
}

impl Func {
    /// Functions whose value depends on the record or the clock: never folded.
    pub(crate) fn is_pure(self) -> bool {
        !matches!(
            self,
            Func::Today
                | Func::Now
                | Func::TimeNow
                | Func::IsNew
                | Func::IsClone
                | Func::IsChanged
                | Func::PriorValue
        )
    }

    /// Name of parameter `i` (0-based) and its signature code.
    pub(crate) fn param(self, i: usize) -> (char, &'static str) {
        let params = self.params();
        let p = params
            .get(i)
            .or_else(|| params.last())
            .copied()
            .unwrap_or("a:value");
        let mut parts = p.splitn(2, ':');
        let code = parts.next().and_then(|c| c.chars().next()).unwrap_or('a');
        (code, parts.next().unwrap_or("value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_at_least_one_hundred_functions_with_unique_names() {
        assert!(ALL_FUNCTIONS.len() >= 100, "only {}", ALL_FUNCTIONS.len());
        let mut names: Vec<_> = ALL_FUNCTIONS.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL_FUNCTIONS.len());
        for f in ALL_FUNCTIONS {
            assert_eq!(Func::lookup(f.name()), Some(*f));
        }
    }
}
