//! Prints the canonical form of a SOQL query given as the first argument, or
//! the rendered error.
fn main() {
    let src = std::env::args().nth(1).unwrap_or_default();
    if src.trim_start().to_ascii_uppercase().starts_with("FIND") {
        match mosaic_soql::parse_search(&src) {
            Ok(q) => println!("{q}\n{q:#?}"),
            Err(e) => println!("{}", e.render(&src)),
        }
        return;
    }
    match mosaic_soql::parse_query(&src) {
        Ok(q) => println!("{q}\n{:?}", q.output_names()),
        Err(e) => println!("{}", e.render(&src)),
    }
}
