# A Python submission: prints the sum of the two numbers on its input.
a, b = map(int, input().split())
print(a + b)
