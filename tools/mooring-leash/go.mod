module mooring.dev/tools/mooring-leash

go 1.22
