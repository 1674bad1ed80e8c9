# int3 (a trap: reported after it), then a divide error (a fault: reported on it)
        .text
        .globl _start
_start:
        int3
after_int3:
        xor     %ecx, %ecx
div_insn:
        div     %rcx
        ud2
