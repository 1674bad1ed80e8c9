# exit(what xmm15 held at the first instruction), after leaving a pattern in xmm15: a
# second run on the same emulator instance must still find 0 (registers start from reset)
        .text
        .globl _start
_start:
        movq    %xmm15, %rdi
        mov     $0x5a5a5a5a, %eax
        movq    %rax, %xmm15
        mov     $60, %eax
        syscall
        ud2
