/*
 * The canonical form of one chunk of output, for sio/executors/_compare.py.
 *
 * Built as a shared library with the system C compiler on first use (see
 * _compare.py) and called through ctypes. It does in one pass what the pure
 * Python fallback does in several (translate, replace until no double
 * space is left, replace " \n", replace "\n "): every run of whitespace
 * becomes one space, whitespace before a newline goes, and with STRIP
 * whitespace at the start of a line goes too. A space that ends the chunk
 * is held back (PENDING): whether it shows depends on what the next chunk
 * starts with.
 */
#include <stddef.h>

/* Byte classes of the table the caller passes (256 entries). */
#define WORD 0
#define SPACE 1
#define NEWLINE 2

/* Bits of *state, kept by the caller between chunks. */
#define PENDING 1    /* a space was held back at the end of the last chunk */
#define LINE_START 2 /* the last byte emitted was '\n', or none was */
#define STRIP 4      /* whitespace at the start of a line goes */

/*
 * Whether in[0..n) is in canonical form already, given the state: then it
 * is its own canonical form and need not be copied. True for most hints
 * (one space between words, no trailing whitespace) and for outputs that
 * equal them, which are compared raw anyway. The check is written without
 * table lookups or early exits inside a block, so that the compiler
 * vectorizes it: several bytes per cycle, against about two cycles per
 * byte for the rewriting loop. A failed check costs one block at most.
 * other_space is the separator besides space, TAB, VT and CR: NUL for
 * oicompare, FF for diff -b.
 */
#define BLOCK 4096

static int already_canonical(const unsigned char *restrict in, size_t n, int st,
                             unsigned char other_space, size_t *newlines)
{
    unsigned char strip = (st & STRIP) != 0;
    size_t lines = 0;
    if (n == 0)
        return 1;
    if (st & PENDING)
        return 0;  /* the held-back space must be put in front */
    if (in[0] == ' ' && (st & LINE_START) && strip)
        return 0;
    unsigned char last = in[n - 1];
    if (last == ' ' || last == '\t' || last == '\v' || last == '\r' || last == other_space)
        return 0;  /* trailing whitespace is held back */
    for (size_t start = 0; start + 1 < n; start += BLOCK) {
        size_t end = start + BLOCK < n - 1 ? start + BLOCK : n - 1;
        unsigned char bad = 0;
        /* Bytes, not ints: 16 or 32 lanes per vector instruction. The count
         * of newlines is kept in bytes for at most 255 bytes at a time. */
        for (size_t sub = start; sub < end; sub += 255) {
            size_t stop = sub + 255 < end ? sub + 255 : end;
            unsigned char nl = 0;
            for (size_t i = sub; i < stop; i++) {
                unsigned char a = in[i], b = in[i + 1];
                bad |= (unsigned char)((a == '\t') | (a == '\v') | (a == '\r') | (a == other_space));
                bad |= (unsigned char)((a == ' ') & ((b == ' ') | (b == '\n')));
                bad |= (unsigned char)(strip & (a == '\n') & (b == ' '));
                nl += a == '\n';
            }
            lines += nl;
        }
        if (bad)
            return 0;
    }
    *newlines += lines + (last == '\n');
    return 1;
}

/*
 * Write the canonical form of in[0..n) to out (room for n + 1 bytes: the
 * held-back space of the previous chunk may come first) and return its
 * length; update *state and add the number of newlines to *newlines.
 * cls[c] is the class of byte c, tr[c] the byte it stands for (a space for
 * every separator). Returns (size_t)-1, writing nothing, when in[0..n) is
 * its own canonical form.
 *
 * Every byte is stored, and the output pointer advances or not: whether it
 * does depends only on the classes of this byte and of the one before,
 * looked up in a table, so that the loop has no branch that text makes
 * hard to predict (a mispredicted branch per word costs more than all the
 * rest). A space is written when its run starts, and taken back when a
 * newline (a branch, but one per line) or the end of the chunk follows.
 */
size_t sio_canonical(const unsigned char *restrict in, size_t n, unsigned char *restrict out,
                     const unsigned char *restrict cls, const unsigned char *restrict tr,
                     int *state, size_t *newlines)
{
    unsigned char *o = out;
    int st = *state;
    /* The two tables the comparators use: NUL is a separator for
     * oicompare, FF for diff -b; the check knows no other table. */
    unsigned char other_space = cls[0] == SPACE ? 0 : '\f';
    int known = cls[other_space] == SPACE && cls[other_space ? 0 : '\f'] == WORD;
    if (known && already_canonical(in, n, st, other_space, newlines)) {
        if (n > 0)
            *state = (st & STRIP) | (in[n - 1] == '\n' ? LINE_START : 0);
        return (size_t)-1;
    }
    /* advance[(class of the byte before << 2) | class of this byte] */
    const unsigned char advance[12] = {
        /* after a word */     1, 1, 1, 0,
        /* after a space */    1, 0, 1, 0,
        /* after a newline */  1, (st & STRIP) ? 0 : 1, 1, 0,
    };
    size_t lines = 0;
    unsigned prev = NEWLINE;
    if (st & PENDING) {
        *o++ = ' ';
        prev = SPACE;
    } else if (!(st & LINE_START)) {
        prev = WORD;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = in[i];
        unsigned k = cls[c];
        if (k == NEWLINE) {
            lines++;
            if (o > out && o[-1] == ' ')
                o--;  /* whitespace before a newline goes */
        }
        *o = tr[c];
        o += advance[(prev << 2) | k];
        prev = k;
    }
    st &= STRIP;
    if (o > out && o[-1] == ' ') {
        o--;
        st |= PENDING;
    }
    if (o > out ? o[-1] == '\n' : (*state & LINE_START) != 0)
        st |= LINE_START;
    *state = st;
    *newlines += lines;
    return (size_t)(o - out);
}

/*
 * The number of newlines in in[0..n): for stretches of output equal byte
 * for byte in both files, whose lines are only counted. Vectorized (byte
 * counters, emptied every 255 bytes): several times faster than a byte
 * loop such as bytes.count.
 */
size_t sio_count_newlines(const unsigned char *restrict in, size_t n)
{
    size_t lines = 0;
    for (size_t sub = 0; sub < n; sub += 255) {
        size_t stop = sub + 255 < n ? sub + 255 : n;
        unsigned char nl = 0;
        for (size_t i = sub; i < stop; i++)
            nl += in[i] == '\n';
        lines += nl;
    }
    return lines;
}
