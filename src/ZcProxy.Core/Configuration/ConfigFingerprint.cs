using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// A cheap summary of every config file (path and content hash), so a watcher can tell a real
/// change from noise, and catch what file-system events miss (symlink swaps, editors' rename dance).
/// </summary>
internal static class ConfigFingerprint
{
    public static string Compute(string mainFile)
    {
        var sb = new StringBuilder();
        Append(sb, mainFile);
        var (includes, tlsFiles) = ReadMainFile(mainFile);
        foreach (var pattern in includes)
            foreach (var file in IncludeResolver.Resolve(mainFile, pattern, out _))
                Append(sb, file);
        // PEM files too: a renewed certificate (certbot writes new files) is a configuration change.
        foreach (var file in tlsFiles) Append(sb, file);
        return sb.ToString();
    }

    /// <summary>The main file's include globs and the full paths of the PEM files its https listeners name.</summary>
    internal static (List<string> Includes, List<string> TlsFiles) ReadMainFile(string mainFile)
    {
        var includes = new List<string>();
        var tlsFiles = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(mainFile), ConfigJson.DocumentOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return (includes, tlsFiles);
            var mainDir = Path.GetDirectoryName(Path.GetFullPath(mainFile))!;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (string.Equals(p.Name, "Include", StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind == JsonValueKind.Array)
                    includes.AddRange(p.Value.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!));
                else if (string.Equals(p.Name, "Listen", StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind == JsonValueKind.Array)
                    foreach (var listen in p.Value.EnumerateArray())
                        tlsFiles.AddRange(Tls.TlsFiles.Named(listen).Select(f => Path.GetFullPath(f, mainDir)));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or ArgumentException)
        {
            // An unreadable or half-written main file still has a fingerprint (its size and mtime below).
        }
        return (includes, tlsFiles);
    }

    private static void Append(StringBuilder sb, string path)
    {
        // Content, not mtime: a swapped symlinked folder can hold files of equal size and timestamp.
        // Config files are small, so hashing them every poll is cheap.
        try
        {
            sb.Append(path).Append('|').Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)))).Append('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            sb.Append(path).Append("|unreadable\n");
        }
    }
}
