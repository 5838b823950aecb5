fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        let h = chaos::history::History::from_jsonl(&text).unwrap();
        print!("{}", chaos::history::normalise::render(&h));
    }
}
