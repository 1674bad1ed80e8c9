# An alien L4 call (int 0x30): message registers (21, 2) written at 0x600000, the UTCB address
# from r13, the tag in rax (label 5, two words), rdx from r12 (a capability index with the call
# flags); afterwards exit(mr[0]) with the result tag in rsi, the label in rdx and the IPC error
# in r10, for the test to see
        .text
        .globl _start
_start:
        mov     $0x600000, %edi
        movq    $21, (%rdi)
        movq    $2, 8(%rdi)
        mov     %r13, %rdi
        mov     $((5 << 16) | 2), %eax
        mov     %r12, %rdx
        xor     %r8d, %r8d
        int     $0x30
after_call:
        mov     %rdx, %r10
        mov     %rsi, %rdx
        mov     %rax, %rsi
        mov     $0x600000, %edi
        mov     (%rdi), %rdi
        mov     $60, %eax
        syscall
        ud2
