# push on an unmapped stack page, store to an unmapped data page, exit(sum): exit(47)
        .text
        .globl _start
_start:
push_insn:
        pushq   $42
store_insn:
        movq    $5, 0x600000
        mov     0x600000, %rdi
        add     (%rsp), %rdi
        mov     $60, %eax
        syscall
        ud2
