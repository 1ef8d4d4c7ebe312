//! One line of the JSON Lines export/import format (`deja_server::admin::transfer`), through
//! `parse_line`, the importer's own parse step: on arbitrary bytes it returns an entry, a
//! blank line or a reason, never panics; an entry it accepts exports to a line that imports
//! back to the same entry, and can be stored (the store's record of it decodes to it).
#![no_main]

use deja_server::admin::transfer::{parse_line, ExportLine};
use deja_store_local::codec::{decode_entry, dequantize_unit, encode_entry, quantize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(entry)) = parse_line(data) else {
        return;
    };
    let line = serde_json::to_vec(&ExportLine::from_entry(&entry)).expect("a line encodes");
    let back = parse_line(&line).expect("an exported line imports");
    assert_eq!(back.as_ref(), Some(&entry));

    let stored = decode_entry(entry.id, &encode_entry(&entry)).expect("a stored entry decodes");
    let vector = if entry.vector.is_empty() {
        Vec::new()
    } else {
        dequantize_unit(&quantize(&entry.vector).codes)
    };
    assert_eq!(stored, deja_core::Entry { vector, ..entry });
});
