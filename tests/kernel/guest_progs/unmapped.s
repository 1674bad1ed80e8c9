# read an address nobody maps
        .text
        .globl _start
_start:
load_insn:
        mov     0x123458, %rax
        ud2
