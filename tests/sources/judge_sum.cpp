// A C++ submission: prints the sum of the two numbers on its input.
#include <iostream>
int main()
{
    long long a, b;
    std::cin >> a >> b;
    std::cout << a + b << '\n';
    return 0;
}
