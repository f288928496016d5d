//! Tern on a Cortex-M4F under `qemu-system-arm -machine mps2-an386`.
//!
//! Finds the packed model that `-device loader` put in PSRAM at [`MODEL_ADDR`], takes a
//! static arena in SRAM, greedy-generates [`N_PREDICT`] tokens after [`PROMPT`] with the
//! scalar kernels, and prints the text and the token ids over semihosting. Exits 0 on
//! success, 1 on any error or panic.
#![no_std]
#![no_main]

use core::fmt::Write;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use panic_semihosting as _;
use tern_baremetal::{SingleCore, StaticArena, find_model, generate_greedy, source::region_at};

/// Where `-device loader,file=MODEL,addr=0x21000000,force-raw=on` puts the model (PSRAM).
const MODEL_ADDR: usize = 0x2100_0000;
/// PSRAM size: the largest model this board takes.
const MODEL_REGION_BYTES: usize = 16 << 20;
/// The fixed prompt (the CI compares with `tern run MODEL -p Hello -n 16 --temp 0`).
const PROMPT: &str = "Hello";
/// Tokens to generate.
const N_PREDICT: usize = 16;

static ARENA: StaticArena<{ 2 << 20 }> = StaticArena::new();

#[entry]
fn main() -> ! {
    let status = match hio::hstdout() {
        Ok(mut out) => match run(&mut out) {
            Ok(()) => debug::EXIT_SUCCESS,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                debug::EXIT_FAILURE
            }
        },
        Err(()) => debug::EXIT_FAILURE,
    };
    debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run(out: &mut hio::HostStream) -> Result<(), tern_baremetal::Error> {
    // SAFETY: qemu's loader wrote the model to PSRAM before the CPU started; code, data,
    // arena and stack live in SSRAM1 and SSRAM2/3 (memory.x), so nothing writes PSRAM.
    let region = unsafe { region_at(MODEL_ADDR, MODEL_REGION_BYTES) };
    let model = find_model(region)?;
    let kernels = tern_kernels::select_scalar();
    let arena = ARENA.take().expect("arena taken once");
    let _ = writeln!(
        out,
        "tern-qemu-m4: model {} bytes at {:#x}, kernels {}, arena {} bytes, prompt {:?}, n {}",
        model.len(),
        MODEL_ADDR,
        kernels.variant.name(),
        arena.len(),
        PROMPT,
        N_PREDICT
    );
    let mut ids = [0u32; N_PREDICT];
    let mut n_ids = 0;
    let stats = generate_greedy(
        model,
        kernels,
        &SingleCore,
        arena,
        PROMPT,
        N_PREDICT,
        |id, text| {
            if n_ids < ids.len() {
                ids[n_ids] = id;
                n_ids += 1;
            }
            let _ = out.write_str(text);
        },
    )?;
    let _ = write!(out, "\nids:");
    for id in &ids[..n_ids] {
        let _ = write!(out, " {id}");
    }
    let _ = writeln!(
        out,
        "\nstats: prompt {} tokens, generated {}, ctx {}, session arena {} bytes",
        stats.prompt_tokens, stats.generated_tokens, stats.ctx_len, stats.session_bytes
    );
    Ok(())
}
