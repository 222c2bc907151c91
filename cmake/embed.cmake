# Embed a file as a C array (cmake -DIN=file -DOUT=file.c -DVAR=name -P embed.cmake):
# const unsigned char NAME[] (NUL-terminated) and const unsigned long NAME_len.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN}; do not edit */\n"
     "const unsigned char ${VAR}[] = {${arr}0x00};\n"
     "const unsigned long ${VAR}_len = ${bytes};\n")
