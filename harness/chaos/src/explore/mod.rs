//! `chaos explore`: random plans nobody wrote, run and judged like the catalogue; every
//! violation shrunk to a minimal scenario, written as a file ready to keep as a
//! regression, with its replay rate.

pub mod generate;
pub mod plan;
pub mod shrink;

#[cfg(test)]
mod tests;
