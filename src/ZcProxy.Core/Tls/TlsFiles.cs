using System.Text.Json;

namespace ZcProxy.Core.Tls;

/// <summary>
/// The files a Listen entry's TLS settings read (certificates, keys, client CAs), found in the raw JSON so the config
/// watcher can hash them even while the rest of the file does not validate.
/// </summary>
internal static class TlsFiles
{
    private static readonly string[] FileKeys = ["Certificate", "CertificateKey", "ClientCa"];

    public static IEnumerable<string> Named(JsonElement listen)
    {
        if (listen.ValueKind != JsonValueKind.Object) yield break;
        foreach (var property in listen.EnumerateObject())
        {
            if (IsFileKey(property) && property.Value.GetString() is { Length: > 0 } path) yield return path;
            else if (string.Equals(property.Name, "Certificates", StringComparison.OrdinalIgnoreCase) && property.Value.ValueKind == JsonValueKind.Array)
                foreach (var entry in property.Value.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Object))
                    foreach (var inner in entry.EnumerateObject())
                        if (IsFileKey(inner) && inner.Value.GetString() is { Length: > 0 } entryPath) yield return entryPath;
        }
    }

    private static bool IsFileKey(JsonProperty property)
        => property.Value.ValueKind == JsonValueKind.String && FileKeys.Any(k => string.Equals(k, property.Name, StringComparison.OrdinalIgnoreCase));
}
