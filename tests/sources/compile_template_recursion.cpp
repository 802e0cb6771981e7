// Hostile: a template recursion that never ends in practice: every
// instantiation needs two new ones (distinct, so nothing is reused), 2^60
// in all, well within the template depth limit. The compiler's time or
// memory limit must stop it.
template <int N, unsigned long long M> struct Tree {
    static const unsigned long long value =
        Tree<N - 1, M * 2>::value + Tree<N - 1, M * 2 + 1>::value;
};
template <unsigned long long M> struct Tree<0, M> {
    static const unsigned long long value = M;
};
int main() { return (int)Tree<60, 0>::value; }
