// Runs Neo4j Community (the 5.26 LTS test harness) in-process for Switchboard's embedded
// knowledge graph: Bolt on 127.0.0.1:<port>, auth off, no HTTP server, the database files in
// <data dir> so the graph survives a restart. Prints "READY <bolt uri>" once it accepts
// connections; stops cleanly on SIGTERM or when its standard input closes (the parent died).
// Usage: java -cp <harness classpath> Launcher.java <port> <data dir>
import java.nio.file.Files;
import java.nio.file.Path;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

public class Launcher {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        Path data = Path.of(args[1]).toAbsolutePath();
        Files.createDirectories(data);
        Neo4j neo4j = Neo4jBuilders.newInProcessBuilder(data.resolveSibling("neo4j-work"))
                .withDisabledServer()
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .withConfig(GraphDatabaseSettings.data_directory, data)
                .withConfig(GraphDatabaseSettings.auth_enabled, false)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(neo4j::close));
        System.out.println("READY " + neo4j.boltURI());
        System.out.flush();
        while (System.in.read() != -1) {
            // parent alive; nothing to read
        }
        System.exit(0);
    }
}
