/*
 * Without libFuzzer (a gcc build), run a fuzz target over the files and
 * folders named on the command line: the seeds and the regression cases
 * run in the ordinary test suite, under the sanitizers.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        return 1;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;

    for (int i = 1; i < argc; i++) {
        struct stat sb;
        DIR *d;
        struct dirent *e;
        if (stat(argv[i], &sb) != 0)
            continue;
        if (!S_ISDIR(sb.st_mode)) {
            files += run_file(argv[i]) == 0;
            continue;
        }
        if (!(d = opendir(argv[i])))
            continue;
        while ((e = readdir(d))) {
            char p[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
            files += run_file(p) == 0;
        }
        closedir(d);
    }
    printf("%d inputs ran without a crash\n", files);
    if (files == 0) {
        fprintf(stderr, "no input was read from the paths given\n");
        return 1;
    }
    return 0;
}
