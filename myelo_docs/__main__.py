from myelo_docs.cli.main import main

main()
