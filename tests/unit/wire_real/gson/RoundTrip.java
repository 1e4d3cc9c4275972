// vragent's own driver (not CloudStack code): reads each fixture file named on the command
// line, deserialises it into the CloudStack model class its `type` names and serialises it
// again with the Gson settings of AbstractConfigItemFacade. A fixture the real serializer
// would have written comes back byte for byte; a key the model lacks is dropped, a key out
// of declaration order moves, a value of the wrong JSON type fails. Prints one line per
// file: the file name, a tab, the re-serialised JSON.
import com.google.gson.FieldNamingPolicy;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

public class RoundTrip {
    private static final String MODEL = "com.cloud.agent.resource.virtualnetwork.model.";
    // ConfigBase type -> the model class its facade serialises (facade/*ConfigItem.java).
    private static final Map<String, String> CLASSES = new HashMap<>();
    static {
        CLASSES.put("ips", "IpAssociation");
        CLASSES.put("firewallrules", "FirewallRules");
        CLASSES.put("ipv6firewallrules", "FirewallRules");
        CLASSES.put("staticnatrules", "StaticNatRules");
        CLASSES.put("forwardrules", "ForwardingRules");
        CLASSES.put("monitorservice", "MonitorService");
        CLASSES.put("dhcpentry", "VmDhcpConfig");
        CLASSES.put("vmdata", "VmData");
        CLASSES.put("vmpassword", "VmPassword");
        CLASSES.put("loadbalancer", "LoadBalancerRules");
        CLASSES.put("guestnetwork", "GuestNetwork");
        CLASSES.put("staticroutes", "StaticRoutes");
        CLASSES.put("site2sitevpn", "Site2SiteVpn");
        CLASSES.put("remoteaccessvpn", "RemoteAccessVpn");
        CLASSES.put("vpnuserlist", "VpnUserList");
        CLASSES.put("ipaliases", "IpAliases");
        CLASSES.put("dhcpconfig", "DhcpConfig");
    }

    public static void main(String[] args) throws Exception {
        Gson gson = new GsonBuilder()
            .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
            .disableHtmlEscaping()
            .create();
        for (String name : args) {
            String text = new String(Files.readAllBytes(Path.of(name)), StandardCharsets.UTF_8);
            JsonObject object = JsonParser.parseString(text).getAsJsonObject();
            String type = object.get("type").getAsString();
            String simple = CLASSES.get(type);
            if (simple == null) {
                System.out.println(name + "\t!no model class for type " + type);
                continue;
            }
            try {
                Object model = gson.fromJson(text, Class.forName(MODEL + simple));
                System.out.println(name + "\t" + gson.toJson(model));
            } catch (RuntimeException e) {
                System.out.println(name + "\t!" + e.toString().replace('\n', ' '));
            }
        }
    }
}
