// Fallback topic creation for Kafka versions whose kafka-tools jar (TopicCommand) is not
// published on Maven Central. Run by scripts/stack.sh with Java's single-file source launcher:
//   java -cp 'LIBS/*' CreateTopic.java BOOTSTRAP NAME PARTITIONS [key=value ...]
// Creates NAME with PARTITIONS partitions, replication factor 1; an existing topic is left as
// it is (stack.sh then checks its partition count). Only kafka-clients' public Admin API is used.
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;

public class CreateTopic {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: CreateTopic BOOTSTRAP NAME PARTITIONS [key=value ...]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        Map<String, String> configs = new HashMap<>();
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("bad topic config (want key=value): " + args[i]);
                System.exit(2);
            }
            configs.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        NewTopic topic = new NewTopic(args[1], Optional.of(Integer.parseInt(args[2])), Optional.of((short) 1))
                .configs(configs);
        try (Admin admin = Admin.create(props)) {
            admin.createTopics(List.of(topic)).all().get();
            System.out.println("Created topic " + args[1] + ".");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof TopicExistsException) {
                System.out.println("Topic " + args[1] + " already exists.");
                return;
            }
            throw e;
        }
    }
}
