/* Prints a greeting with its arguments and the line read from stdin. */
import java.util.Scanner;

public class Hello {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        String line = in.hasNextLine() ? in.nextLine() : "";
        System.out.println("hello " + String.join(" ", args) + " " + line);
    }
}
