# an invalid opcode; a handler that moves rip past it gets exit(3)
        .text
        .globl _start
_start:
        nop
bad_insn:
        ud2
after:
        mov     $60, %eax
        mov     $3, %edi
        syscall
        ud2
