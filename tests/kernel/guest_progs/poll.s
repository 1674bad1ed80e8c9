# spin until the word at 0x600000 is non-zero, then exit(word); counts rounds in rbx
        .text
        .globl _start
_start:
        xor     %ebx, %ebx
1:      inc     %rbx
        mov     0x600000, %rax
        test    %rax, %rax
        jz      1b
        mov     %rax, %rdi
        mov     $60, %eax
        syscall
        ud2
