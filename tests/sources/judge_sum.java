// A Java submission (class "sum", as oioioi names it after the problem):
// prints the sum of the two numbers on its input.
import java.util.Scanner;

class sum {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        long a = in.nextLong(), b = in.nextLong();
        System.out.println(a + b);
    }
}
