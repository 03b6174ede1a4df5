using System.Reflection;

namespace ZcProxy.Cli;

/// <summary>`zcproxy [run|check] [--config FILE]`.</summary>
internal sealed record CommandLine(string Command, string ConfigFile)
{
    public const string Usage = "usage: zcproxy [run|check] [--config FILE]\n" +
        "  run    start the proxy (default)\n" +
        "  check  validate the configuration (main file + includes) and exit: 0 when valid, 1 otherwise\n" +
        "  --version  print the version";

    /// <summary>
    /// The product version: &lt;Version&gt; in Directory.Build.props, the one place it is set (the .deb is named after
    /// it too). The SDK may append "+commit" to the informational version; operators get the version alone.
    /// </summary>
    public static string Version { get; } =
        (typeof(CommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown")
            .Split('+')[0];

    public static CommandLine? Parse(string[] args, out string? error)
    {
        error = null;
        string command = "run";
        string? config = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "run" or "check" when i == 0:
                    command = args[i];
                    break;
                case "--config" or "-c" when i + 1 < args.Length:
                    config = args[++i];
                    break;
                case "--help" or "-h" or "help":
                    return new CommandLine("help", "");
                case "--version":
                    return new CommandLine("version", "");
                default:
                    error = $"unknown argument '{args[i]}'\n{Usage}";
                    return null;
            }
        }
        return new CommandLine(command, config ?? DefaultConfigFile());
    }

    /// <summary>conf/zcproxy.json under the working directory (a checkout), else the installed /etc/zcproxy/zcproxy.json.</summary>
    private static string DefaultConfigFile()
    {
        var local = Path.GetFullPath("conf/zcproxy.json");
        return File.Exists(local) ? local : "/etc/zcproxy/zcproxy.json";
    }
}
