//! Tern on bare-metal AArch64 under `qemu-system-aarch64 -machine virt -cpu cortex-a76`.
//!
//! Boots at EL1 (start-up below), finds the packed model that `-device loader` put at
//! [`MODEL_ADDR`], takes a static arena, greedy-generates [`N_PREDICT`] tokens after [`PROMPT`]
//! with the NEON + dotprod kernels, and prints the text and the token ids over semihosting.
//! Then it generates again with the weights *streamed*: read through an `embedded_io::{Read,
//! Seek}` storage driver (4 KiB per read, as from a flash chip) into two staging buffers, every
//! tensor once per token, and prints those ids too (the CI checks both against `tern run`).
//! Exits 0 on success, 1 on any error (and 101 on panic).
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

use semihosting::{print, println, process};
use tern_baremetal::{
    SingleCore, StaticArena, find_model, generate_greedy, generate_greedy_streamed,
    source::region_at, stream::MemStorage,
};
use tern_kernels::CpuFeatures;

/// Where `-device loader,file=MODEL,addr=0x44000000,force-raw=on` puts the model.
const MODEL_ADDR: usize = 0x4400_0000;
/// Bytes from [`MODEL_ADDR`] to the end of RAM with `-m 1024` (RAM is 0x4000_0000..0x8000_0000).
const MODEL_REGION_BYTES: usize = 0x8000_0000 - MODEL_ADDR;
/// The fixed prompt (the CI compares with `tern run MODEL -p Hello -n 8 --temp 0`).
const PROMPT: &str = "Hello";
/// Tokens to generate.
const N_PREDICT: usize = 8;

static ARENA: StaticArena<{ 16 << 20 }> = StaticArena::new();

// Start-up (tested in ../shared/TOOLCHAIN.md §6): park secondary cores, enable FP/SIMD at EL1
// (or the first NEON instruction traps), set the stack, clear .bss, call `rust_main`.
global_asm!(
    ".section .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "    mrs x1, mpidr_el1",
    "    and x1, x1, #3",
    "    cbnz x1, 2f",
    "    mrs x1, cpacr_el1",
    "    orr x1, x1, #(3 << 20)",
    "    msr cpacr_el1, x1",
    "    isb",
    "    ldr x1, =__stack_top",
    "    mov sp, x1",
    "    ldr x1, =__bss_start",
    "    ldr x2, =__bss_end",
    "1:  cmp x1, x2",
    "    b.hs 3f",
    "    str xzr, [x1], #8",
    "    b 1b",
    "3:  bl rust_main",
    "2:  wfe",
    "    b 2b",
);

/// One core, interrupts never enabled: a critical section needs no masking.
struct SingleCoreNoIrq;
critical_section::set_impl!(SingleCoreNoIrq);
// SAFETY: this firmware runs on one core (the others are parked in `_start`) and never
// unmasks interrupts, so nothing can preempt a critical section.
unsafe impl critical_section::Impl for SingleCoreNoIrq {
    unsafe fn acquire() {}
    unsafe fn release(_: ()) {}
}

/// Virtual counter ticks and their frequency (Hz).
fn ticks() -> (u64, u64) {
    let (t, f): (u64, u64);
    // SAFETY: reading the generic timer's virtual count and frequency at EL1 has no side
    // effects (CNTKCTL_EL1 does not matter at EL1).
    unsafe {
        asm!("isb", "mrs {t}, cntvct_el0", "mrs {f}, cntfrq_el0", t = out(reg) t, f = out(reg) f);
    }
    (t, f)
}

#[unsafe(no_mangle)]
extern "C" fn rust_main() -> ! {
    match run() {
        Ok(()) => process::exit(0),
        Err(e) => {
            println!("error: {e}");
            process::exit(1)
        }
    }
}

fn run() -> Result<(), tern_baremetal::Error> {
    let (t0, hz) = ticks();
    // SAFETY: qemu's loader wrote the model to RAM at MODEL_ADDR before the CPU started;
    // the image, .bss and stack end below 0x4200_0000 (link.ld, 16 MiB arena), so nothing
    // else uses MODEL_ADDR..end of RAM.
    let region = unsafe { region_at(MODEL_ADDR, MODEL_REGION_BYTES) };
    let model = find_model(region)?;
    // Cortex-A76 (the Pi 5 class): NEON and dotprod per its datasheet; qemu's cortex-a76 has both.
    let f = CpuFeatures {
        neon: true,
        dotprod: true,
        ..CpuFeatures::default()
    };
    // SAFETY: the claimed features are present on the Cortex-A76 this firmware is built for.
    let kernels = unsafe { tern_kernels::select(f) };
    let arena = ARENA.take().expect("arena taken once");
    println!(
        "tern-qemu-a64: model {} bytes at {:#x}, kernels {}, arena {} bytes, prompt {:?}, n {}",
        model.len(),
        MODEL_ADDR,
        kernels.variant.name(),
        arena.len(),
        PROMPT,
        N_PREDICT
    );
    let mut ids: heapless_ids::Ids = heapless_ids::Ids::new();
    let mut t_first = None;
    let stats = generate_greedy(
        model,
        kernels,
        &SingleCore,
        arena,
        PROMPT,
        N_PREDICT,
        |id, text| {
            t_first.get_or_insert_with(|| ticks().0);
            ids.push(id);
            print!("{text}");
        },
    )?;
    let (t1, _) = ticks();
    println!();
    ids.print("ids:");
    let ms = |a: u64, b: u64| (b - a) * 1000 / hz.max(1);
    let tf = t_first.unwrap_or(t1);
    println!(
        "stats: prompt {} tokens, generated {}, ctx {}, session arena {} bytes; load+prefill {} ms, decode {} ms",
        stats.prompt_tokens,
        stats.generated_tokens,
        stats.ctx_len,
        stats.session_bytes,
        ms(t0, tf),
        ms(tf, t1)
    );

    // The same run with the weights streamed through a storage driver.
    let mut sids = heapless_ids::Ids::new();
    // A flash chip behind its driver: at most one 4 KiB page per read call. (Under qemu the
    // "chip" is the loaded model's RAM; on a board this is the SPI/QSPI driver.)
    let storage = MemStorage::new(model, 4096);
    let st = generate_greedy_streamed(
        storage,
        kernels,
        &SingleCore,
        arena,
        PROMPT,
        N_PREDICT,
        |id, _| sids.push(id),
    )?;
    let (t2, _) = ticks();
    sids.print("streamed ids:");
    println!(
        "streamed: arena {} bytes for a {} byte model, {} bytes read, {} ms",
        st.session_bytes,
        model.len(),
        st.bytes_read,
        ms(t1, t2)
    );
    Ok(())
}

mod heapless_ids {
    use semihosting::{print, println};
    /// Generated ids (at most 256 kept).
    pub struct Ids {
        buf: [u32; 256],
        n: usize,
    }
    impl Ids {
        pub const fn new() -> Self {
            Ids {
                buf: [0; 256],
                n: 0,
            }
        }
        pub fn push(&mut self, id: u32) {
            // One call per token, several only for text over 256 bytes: keep distinct calls.
            if self.n < self.buf.len() {
                self.buf[self.n] = id;
                self.n += 1;
            }
        }
        pub fn print(&self, label: &str) {
            print!("{label}");
            for id in &self.buf[..self.n] {
                print!(" {id}");
            }
            println!();
        }
    }
}
