from reloblur.dataset_cli.app import main

main()
