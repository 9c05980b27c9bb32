#if RDD_CUDA_EMULATED
#include "engine/emu_fiber.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define RDD_EMU_ASAN 1
#else
#define RDD_EMU_ASAN 0
#endif

// ------------------------------------------------------------------------------------------------
// The x86-64 switch (System V ABI). rdd_emu_switch(save, load): push the callee-saved registers and the
// SSE/x87 control words on the current stack, store the stack pointer in *save, load `load`, pop the
// same frame from there and return into whatever that stack was doing. A new fiber's stack is laid out
// as such a frame whose return address is the trampoline, which calls r13(r12).
// ------------------------------------------------------------------------------------------------
#if defined(__x86_64__)
#define RDD_EMU_HAVE_ASM_SWITCH 1
extern "C" void rdd_emu_switch(void** save, void* load);
extern "C" void rdd_emu_trampoline();
asm(R"(
    .text
    .globl rdd_emu_switch
    .type rdd_emu_switch, @function
    .p2align 4
rdd_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    stmxcsr 8(%rsp)
    fnstcw 12(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr 8(%rsp)
    fldcw 12(%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size rdd_emu_switch, .-rdd_emu_switch

    .globl rdd_emu_trampoline
    .type rdd_emu_trampoline, @function
    .p2align 4
rdd_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size rdd_emu_trampoline, .-rdd_emu_trampoline
    .section .note.GNU-stack,"",@progbits
    .text
)");
#else
#define RDD_EMU_HAVE_ASM_SWITCH 0
#endif

namespace rdd::emu {

namespace {

bool use_ucontext() {
  static const bool u = [] {
    const char* e = std::getenv("RDD_EMU_FIBERS");
    if (e && std::strcmp(e, "ucontext") == 0) return true;
    if (e && *e && std::strcmp(e, "asm") != 0) {
      std::fprintf(stderr, "rdd: RDD_EMU_FIBERS=%s is not 'asm' or 'ucontext'; using the default\n", e);
    }
    return !RDD_EMU_HAVE_ASM_SWITCH;
  }();
  return u;
}

}  // namespace

const char* fiber_switch_kind() { return use_ucontext() ? "ucontext" : "asm"; }

struct Fiber::Impl {
  Entry entry;
  void* arg;
  void* home_sp = nullptr;  // the scheduler's saved stack pointer while this fiber runs (asm switch)
  void* sp = nullptr;       // this fiber's saved stack pointer while it does not (asm switch)
  ucontext_t context{}, home_context{};  // the same for the ucontext switch
  char* mapping = nullptr;                // guard page + stack
  size_t mapping_bytes = 0;
  char* stack = nullptr;                  // lowest usable byte
  size_t stack_bytes = 0;
#if RDD_EMU_ASAN
  void* fake_stack = nullptr;  // ASan's per-side bookkeeping across a switch
  void* home_fake_stack = nullptr;
  const void* home_bottom = nullptr;
  size_t home_size = 0;
#endif

  static void start(void* self);
  void prepare();
  void announce_leaving_home() {
#if RDD_EMU_ASAN
    __sanitizer_start_switch_fiber(&home_fake_stack, stack, stack_bytes);
#endif
  }
  void announce_back_home() {
#if RDD_EMU_ASAN
    __sanitizer_finish_switch_fiber(home_fake_stack, nullptr, nullptr);
#endif
  }
  void announce_leaving_fiber() {
#if RDD_EMU_ASAN
    __sanitizer_start_switch_fiber(&fake_stack, home_bottom, home_size);
#endif
  }
  void announce_in_fiber() {
#if RDD_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, &home_bottom, &home_size);
#endif
  }
};

void Fiber::Impl::start(void* self) {
  Impl* f = static_cast<Impl*>(self);
  f->announce_in_fiber();
  f->entry(f->arg);
  std::fprintf(stderr, "rdd emulated CUDA: a fiber's entry returned (internal error)\n");
  std::abort();
}

// makecontext passes int arguments only: the Impl pointer travels in two halves.
static void ucontext_start(unsigned lo, unsigned hi) {
  Fiber::Impl::start(reinterpret_cast<void*>((uintptr_t(hi) << 32) | uintptr_t(lo)));
}

void Fiber::Impl::prepare() {
#if RDD_EMU_ASAN
  // Frames left on an abandoned stack keep their redzones poisoned; a reused stack starts clean.
  ASAN_UNPOISON_MEMORY_REGION(stack, stack_bytes);
#endif
  if (use_ucontext()) {
    RDD_CHECK(getcontext(&context) == 0, "emulated CUDA: getcontext failed");
    context.uc_stack.ss_sp = stack;
    context.uc_stack.ss_size = stack_bytes;
    context.uc_link = nullptr;
    const uintptr_t p = reinterpret_cast<uintptr_t>(this);
    makecontext(&context, reinterpret_cast<void (*)()>(ucontext_start), 2, unsigned(p & 0xffffffffu), unsigned(p >> 32));
    return;
  }
#if RDD_EMU_HAVE_ASM_SWITCH
  // Top of stack, 16-byte aligned; the frame rdd_emu_switch pops: [mxcsr/fpu cw: 16 B] r15 r14 r13 r12 rbx rbp ret.
  // The trampoline must start with rsp ≡ 0 (mod 16) so that its call leaves the callee at ≡ 8, as the ABI wants.
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + stack_bytes) & ~uintptr_t(15);
  auto* frame = reinterpret_cast<uint64_t*>(top - 88);
  uint32_t mxcsr = 0;
  uint16_t fpu_cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu_cw));
  std::memset(frame, 0, 88);
  std::memcpy(reinterpret_cast<char*>(frame) + 8, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(frame) + 12, &fpu_cw, 2);
  frame[2] = 0;                                              // r15
  frame[3] = 0;                                              // r14
  frame[4] = reinterpret_cast<uint64_t>(&Impl::start);       // r13: the function
  frame[5] = reinterpret_cast<uint64_t>(this);               // r12: its argument
  frame[6] = 0;                                              // rbx
  frame[7] = 0;                                              // rbp: ends frame-pointer backtraces here
  frame[8] = reinterpret_cast<uint64_t>(&rdd_emu_trampoline);  // return address
  sp = frame;
#endif
}

Fiber::Fiber(Entry entry, void* arg) : impl_(new Impl) {
  impl_->entry = entry;
  impl_->arg = arg;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  impl_->mapping_bytes = kStackBytes + page;
  void* m = mmap(nullptr, impl_->mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    delete impl_;
    fail("emulated CUDA: cannot map a ", kStackBytes >> 10, " KiB fiber stack (out of memory?)");
  }
  impl_->mapping = static_cast<char*>(m);
  mprotect(impl_->mapping, page, PROT_NONE);  // a kernel that overflows its stack faults here
  impl_->stack = impl_->mapping + page;
  impl_->stack_bytes = kStackBytes;
  impl_->prepare();
}

Fiber::~Fiber() {
  munmap(impl_->mapping, impl_->mapping_bytes);
  delete impl_;
}

void Fiber::reset() { impl_->prepare(); }

void Fiber::resume() {
  impl_->announce_leaving_home();
  if (use_ucontext()) {
    swapcontext(&impl_->home_context, &impl_->context);
  } else {
#if RDD_EMU_HAVE_ASM_SWITCH
    rdd_emu_switch(&impl_->home_sp, impl_->sp);
#endif
  }
  impl_->announce_back_home();
}

void Fiber::suspend() {
  impl_->announce_leaving_fiber();
  if (use_ucontext()) {
    swapcontext(&impl_->context, &impl_->home_context);
  } else {
#if RDD_EMU_HAVE_ASM_SWITCH
    rdd_emu_switch(&impl_->sp, impl_->home_sp);
#endif
  }
  impl_->announce_in_fiber();
}

}  // namespace rdd::emu
#endif
