using ZcProxy.Cli;
using ZcProxy.Hosting;

var commandLine = CommandLine.Parse(args, out var usageError);
if (commandLine is null)
{
    Console.Error.WriteLine(usageError);
    return 2;
}

switch (commandLine.Command)
{
    case "help":
        Console.WriteLine(CommandLine.Usage);
        return 0;
    case "version":
        Console.WriteLine($"zcproxy {CommandLine.Version}");
        return 0;
    case "check":
        return await CheckCommand.RunAsync(commandLine.ConfigFile);
}

// A start that cannot happen says why in one line per problem and exits 1: no stack trace, no abort.
var (config, errors) = await CheckCommand.LoadAndValidateAsync(commandLine.ConfigFile);
if (config is null)
{
    foreach (var error in errors) Console.Error.WriteLine($"zcproxy: not started: {error}");
    return 1;
}

WebApplication app;
try
{
    app = await ProxyHost.StartAsync(commandLine.ConfigFile, config);
}
catch (StartupException e)
{
    Console.Error.WriteLine($"zcproxy: not started: {e.Message}");
    return 1;
}
await app.WaitForShutdownAsync();
await app.DisposeAsync();
return 0;
