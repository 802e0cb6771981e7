// Java programs for the supervised Java runner: each argument of the first
// input line picks a behaviour (see tests/integration/test_judge_java.py).
import java.io.*;
import java.net.Socket;
import java.util.*;

class behave {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String what = in.readLine().trim();
        switch (what) {
            case "ok": System.out.println("42"); break;
            case "loop": { long x = 0; while (true) { x++; if (x == -1) break; } System.out.println(x); break; }
            case "throw": throw new IllegalStateException("boom");
            case "heap": { List<long[]> keep = new ArrayList<>(); while (true) keep.add(new long[1 << 20]); }
            case "threads": {
                // a few threads of its own: allowed
                final long[] sums = new long[8];
                Thread[] ts = new Thread[8];
                for (int i = 0; i < 8; i++) { final int k = i; ts[i] = new Thread(() -> { for (int j = 0; j < 1000; j++) sums[k] += j; }); ts[i].start(); }
                for (Thread t : ts) t.join();
                long total = 0; for (long s : sums) total += s;
                System.out.println(total == 8L * 499500 ? "42" : "bad");
                break;
            }
            case "many-threads": {
                List<Thread> ts = new ArrayList<>();
                for (int i = 0; i < 200; i++) { Thread t = new Thread(() -> { try { Thread.sleep(5000); } catch (InterruptedException e) { } }); t.setDaemon(true); t.start(); ts.add(t); }
                System.out.println("42");
                break;
            }
            // its input by name in the job directory (first line "read-local")
            case "read-local": { BufferedReader r = new BufferedReader(new FileReader("in")); r.readLine(); System.out.println("42"); break; }
            case "read-passwd": { BufferedReader r = new BufferedReader(new FileReader("/etc/passwd")); System.out.println(r.readLine()); break; }
            case "write": { try (FileWriter w = new FileWriter("/tmp/sio-java-was-here")) { w.write("x"); } System.out.println("42"); break; }
            case "socket": { new Socket("127.0.0.1", 5672).close(); System.out.println("42"); break; }
            case "exec": { Process p = new ProcessBuilder("/bin/true").start(); p.waitFor(); System.out.println("42"); break; }
            default: System.out.println("unknown " + what);
        }
    }
}
