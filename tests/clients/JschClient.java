// A minimal JSch client as Jenkins or Eclipse use it, run with the source launcher:
//   java -cp /usr/share/java/jsch.jar JschClient.java PORT USER PASSWORD KNOWN_HOSTS exec COMMAND
//   java -cp /usr/share/java/jsch.jar JschClient.java PORT USER PASSWORD KNOWN_HOSTS sftp LOCAL REMOTE LOCAL_BACK
// The host key is checked strictly against KNOWN_HOSTS. exec prints the command's stdout and
// exits with its exit status; sftp uploads LOCAL to REMOTE and downloads it to LOCAL_BACK on one
// connection. The negotiated algorithms go to stderr.
import com.jcraft.jsch.ChannelExec;
import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.util.Properties;

public class JschClient {
    public static void main(String[] args) throws Exception {
        JSch jsch = new JSch();
        jsch.setKnownHosts(args[3]);
        Session session = jsch.getSession(args[1], "127.0.0.1", Integer.parseInt(args[0]));
        session.setPassword(args[2]);
        Properties config = new Properties();
        config.put("StrictHostKeyChecking", "yes");
        config.put("PreferredAuthentications", "password");
        session.setConfig(config);
        session.connect(30000);
        System.err.println("host key " + session.getHostKey().getType() + ", server " + session.getServerVersion());
        int status = 0;
        if (args[4].equals("exec")) {
            ChannelExec channel = (ChannelExec) session.openChannel("exec");
            channel.setCommand(args[5]);
            InputStream in = channel.getInputStream();
            channel.connect(30000);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[8192];
            for (int n; (n = in.read(buffer)) >= 0; ) {
                out.write(buffer, 0, n);
            }
            // JSch has no wait call: the exit status is set when the channel closes after EOF.
            while (!channel.isClosed()) {
                Thread.sleep(20);
            }
            System.out.write(out.toByteArray());
            System.out.flush();
            status = channel.getExitStatus();
            channel.disconnect();
        } else {
            ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
            sftp.connect(30000);
            sftp.put(args[5], args[6]);
            sftp.get(args[6], args[7]);
            sftp.disconnect();
        }
        session.disconnect();
        System.exit(status);
    }
}
